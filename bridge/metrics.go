package bridge

import (
	"strconv"

	"github.com/connectsso/connect/scim/client"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's Prometheus series (DESIGN.md §7). Labels carry
// server ids, tasks and actions, never user ids.
type metrics struct {
	runs        *prometheus.CounterVec
	items       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	held        *prometheus.GaugeVec
	lag         *prometheus.GaugeVec
	valves      *prometheus.CounterVec
	stateErrors *prometheus.CounterVec
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_bridge_sync_runs_total",
			Help: "Task runs by server, task and result (ok, held, failed, busy).",
		}, []string{"server", "task", "result"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_bridge_sync_items_total",
			Help: "Plan items by server, task, action and result (applied, failed, held, planned for dry runs).",
		}, []string{"server", "task", "action", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connect_bridge_sync_duration_seconds",
			Help:    "Task run duration by task and mode (full, changes, modified).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900},
		}, []string{"task", "mode"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connect_bridge_sync_last_success_timestamp_seconds",
			Help: "Unix time of the last successful run by server and task.",
		}, []string{"server", "task"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connect_bridge_sync_held_plans",
			Help: "1 while the task's last plan is held for approval.",
		}, []string{"server", "task"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connect_bridge_sync_lag_seconds",
			Help: "Age of the newest hub change the users task had not yet applied at its last run (0 when caught up).",
		}, []string{"server"}),
		valves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_bridge_sync_valve_trips_total",
			Help: "Safety valves that held a plan, by valve (threshold, empty, shrunk, incomplete).",
		}, []string{"server", "task", "valve"}),
		stateErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_bridge_state_errors_total",
			Help: "Failed state (Redis) operations by operation.",
		}, []string{"op"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connect_bridge_source_requests_total",
			Help: "HTTP requests to sources by server, resource, method and status code (0: network error).",
		}, []string{"server", "resource", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connect_bridge_source_request_duration_seconds",
			Help:    "Latency of HTTP requests to sources by resource.",
			Buckets: prometheus.DefBuckets,
		}, []string{"resource"}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.items, m.duration, m.lastSuccess, m.held, m.lag,
		m.valves, m.stateErrors, m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe returns a scim/client attempt hook for server.
func (m *metrics) observe(server string) func(client.Attempt) {
	return func(a client.Attempt) {
		m.requests.WithLabelValues(server, a.Resource, a.Method, strconv.Itoa(a.Status)).Inc()
		m.latency.WithLabelValues(a.Resource).Observe(a.Duration.Seconds())
	}
}
