package sp

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Login results (the result label of connect_bridge_sso_logins_total).
const (
	resultSuccess      = "success"       // SSO login through a hub
	resultLocalSuccess = "local_success" // local form
	resultLocalFailure = "local_failure" // local form refused
	resultOutOfScope   = "out_of_scope"  // the user is outside the bridge's scope
	resultDenied       = "denied"        // the account may not log in, or the hub declined
	resultInvalid      = "invalid"       // a response that failed validation
	resultReplayed     = "replayed"      // a request, response or assertion used twice
	resultExpired      = "expired"       // no pending request (too old, unknown, unsolicited)
	resultCSRF         = "csrf"          // a form or answer from another browser or origin
	resultThrottled    = "throttled"     // too many failed local logins (account or address)
	resultError        = "error"         // a store or directory failure
)

// Logout kinds (the kind label of connect_bridge_sso_logouts_total).
const (
	logoutLocal      = "local"       // session ended here only
	logoutSingle     = "single"      // ended here and sent to the hub
	logoutFromHub    = "from_hub"    // the hub asked (single logout)
	logoutHubRefused = "hub_refused" // a hub LogoutRequest failed validation
	logoutHubFailed  = "hub_failed"  // the hub did not confirm, or ending sessions failed
)

type metrics struct {
	logins   *prometheus.CounterVec
	logouts  *prometheus.CounterVec
	auth     *prometheus.CounterVec
	authDur  prometheus.Histogram
	authByCd map[int]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_bridge_sso_logins_total",
			Help: "Bridge logins (SSO through a hub, and the local form) by result.",
		}, []string{"result"}),
		logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_bridge_sso_logouts_total",
			Help: "Bridge logouts by kind (local, single, from_hub, hub_refused, hub_failed).",
		}, []string{"kind"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_bridge_forward_auth_total",
			Help: "Forward-auth checks (/connect/auth) by HTTP status code.",
		}, []string{"code"}),
		authDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connect_bridge_forward_auth_duration_seconds",
			Help:    "Time to answer one forward-auth check.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .002, .005, .01, .025, .1},
		}),
		authByCd: map[int]prometheus.Counter{},
	}
	for _, r := range []string{resultSuccess, resultLocalSuccess, resultLocalFailure, resultOutOfScope, resultDenied, resultInvalid, resultReplayed, resultExpired, resultCSRF, resultThrottled, resultError} {
		m.logins.WithLabelValues(r)
	}
	for _, k := range []string{logoutLocal, logoutSingle, logoutFromHub, logoutHubRefused, logoutHubFailed} {
		m.logouts.WithLabelValues(k)
	}
	// The forward-auth path resolves its counters once: no label lookup per check.
	for _, c := range []int{http.StatusAccepted, http.StatusFound, http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable} {
		m.authByCd[c] = m.auth.WithLabelValues(strconv.Itoa(c))
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.logins, m.logouts, m.auth, m.authDur} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) login(result string) { m.logins.WithLabelValues(result).Inc() }

func (m *metrics) logout(kind string) { m.logouts.WithLabelValues(kind).Inc() }

func (m *metrics) authDone(code int, d time.Duration) {
	c, ok := m.authByCd[code]
	if !ok {
		c = m.auth.WithLabelValues(strconv.Itoa(code))
	}
	c.Inc()
	m.authDur.Observe(d.Seconds())
}
