package idp

import (
	"crypto"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Login results (the result label of connect_hub_saml_logins_total).
const (
	resultSuccess   = "success"
	resultBad       = "bad_credentials" // unknown user, wrong password, no password
	resultLocked    = "locked"          // account locked out
	resultThrottled = "throttled"       // source address blocked
	resultSuspended = "suspended"
	resultCSRF      = "csrf"
	resultBusy      = "busy" // no hashing slot in time
	resultError     = "error"
	// resultUpstream: logged in through the upstream IdP;
	// resultUpstreamUnknown: its identity matched no hub user (or several).
	resultUpstream        = "upstream"
	resultUpstreamUnknown = "upstream_unknown_user"
)

type metrics struct {
	logins    *prometheus.CounterVec
	responses *prometheus.CounterVec
	signing   *prometheus.HistogramVec
	refusals  *prometheus.CounterVec
	// backChannel counts SOAP LogoutRequests sent to SPs (backchannel.go).
	backChannel *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_hub_saml_logins_total",
			Help: "Hub login attempts by result.",
		}, []string{"result"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_hub_saml_responses_total",
			Help: "SAML responses issued by the hub IdP, by kind (sso, idp_initiated, error).",
		}, []string{"kind"}),
		signing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connect_hub_saml_signing_seconds",
			Help:    "Time to make one XML signature, by algorithm.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}, []string{"algorithm"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_hub_saml_refusals_total",
			Help: "SAML requests refused with an error page, by reason.",
		}, []string{"reason"}),
		backChannel: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_hub_saml_backchannel_logouts_total",
			Help: "Back-channel (SOAP) LogoutRequests sent to service providers when a hub session ends, by result (success, failed, front_channel).",
		}, []string{"result"}),
	}
	for _, r := range []string{resultSuccess, resultBad, resultLocked, resultThrottled, resultSuspended, resultCSRF, resultBusy, resultError, resultUpstream, resultUpstreamUnknown} {
		m.logins.WithLabelValues(r)
	}
	for _, k := range []string{"sso", "idp_initiated", "error"} {
		m.responses.WithLabelValues(k)
	}
	for _, r := range []string{backChannelSuccess, backChannelFailed, backChannelFront} {
		m.backChannel.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.logins, m.responses, m.signing, m.refusals, m.backChannel} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// timedSigner observes every signature's duration (wall time, not the
// injected clock: it measures work).
type timedSigner struct {
	crypto.Signer
	obs prometheus.Observer
}

func (t timedSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	start := time.Now()
	sig, err := t.Signer.Sign(rand, digest, opts)
	t.obs.Observe(time.Since(start).Seconds())
	return sig, err
}

type ctxKey int

const (
	ctxFreshSession ctxKey = iota
	ctxLogoutUser
)
