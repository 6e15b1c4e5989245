package sso

// Garbage-collector tuning of `bridge serve` (and the memory limit of
// `bridge sync`; its GOGC is cmd/connect's syncGCPercent). cmd/connect
// applies them with internal/gctune as the defaults of --gc-percent and
// --memory-limit.
//
// An SSO login costs the bridge about 1 MB of allocation (almost all of it
// crewjam's parse and signature checks of the hub's Response: the XML
// round-trip check, two etree trees, canonical copies for each signature)
// around a live heap of a few megabytes, so with Go's default GOGC=100 the
// collector ran every few logins and took a sixth of the bridge's CPU per
// round trip. Collecting when the heap has grown by 400% divides the
// number of cycles by about four; the soft memory limit makes the collector
// run sooner whenever the heap nears it, so a large sync in the same process
// stays within the bridge's RSS budget (150 MB during a 100,000-user initial
// sync, whose live heap is a few tens of megabytes). docs/benchmarks.md
// ("SSO round trip") has the measurements.
const (
	// DefaultGCPercent is the serving bridge's GOGC.
	DefaultGCPercent = 400
	// DefaultMemoryLimit is the bridge's soft memory limit (GOMEMLIMIT), in
	// bytes, serving or syncing. Raise it (--memory-limit) with the heap a large
	// deployment needs, e.g. a session cache of many thousands of users: a
	// live heap near the limit makes the collector run continuously (the
	// runtime caps it at half the CPU).
	DefaultMemoryLimit = 128 << 20
)
