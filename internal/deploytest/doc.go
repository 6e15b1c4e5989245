// Package deploytest checks the operator-facing files under deploy/ against
// the code and against the tools that will read them: the Kubernetes manifests
// parse and build with kustomize and refer to objects, ports and keys that
// exist; every metric, label and label value that the Prometheus rules and the
// Grafana dashboard query is one the Go code exports; promtool accepts and
// unit-tests the rules; systemd-analyze verifies the units and scores their
// sandbox; the example settings name real flags and pass check-config; and the
// hub and bridge replicas started with the Kubernetes settings answer their
// probes on PostgreSQL (and Redis) and stop in time on SIGTERM.
//
// It holds tests only and imports nothing of the module but internal/testenv.
package deploytest
