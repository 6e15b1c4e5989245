package sso

import "runtime/debug"

// Garbage-collector tuning of `bridge serve`.
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
	// DefaultMemoryLimit is the serving bridge's soft memory limit
	// (GOMEMLIMIT), in bytes. Raise it (GOMEMLIMIT) with the heap a large
	// deployment needs, e.g. a session cache of many thousands of users: a
	// live heap near the limit makes the collector run continuously (the
	// runtime caps it at half the CPU).
	DefaultMemoryLimit = 128 << 20
)

// GCSettings tune the garbage collector of the serving bridge process. A zero
// field keeps the runtime's setting (GOGC, GOMEMLIMIT or their defaults).
type GCSettings struct {
	// Percent is GOGC; negative turns the collector off (only sensible
	// with MemoryLimit).
	Percent int
	// MemoryLimit is the soft memory limit in bytes (GOMEMLIMIT).
	MemoryLimit int64
}

// DefaultGCSettings are the settings `bridge serve` applies unless the
// operator set GOGC or GOMEMLIMIT.
func DefaultGCSettings() GCSettings {
	return GCSettings{Percent: DefaultGCPercent, MemoryLimit: DefaultMemoryLimit}
}

// TuneGC applies g to this process and returns a function that restores
// the settings it replaced. The settings are process-wide: call it from the
// process that serves the bridge only.
func TuneGC(g GCSettings) (restore func()) {
	prevPercent, prevLimit := 0, int64(-1)
	setPercent := g.Percent != 0
	if setPercent {
		prevPercent = debug.SetGCPercent(g.Percent)
	}
	if g.MemoryLimit > 0 {
		prevLimit = debug.SetMemoryLimit(g.MemoryLimit)
	}
	return func() {
		if setPercent {
			debug.SetGCPercent(prevPercent)
		}
		if prevLimit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
	}
}
