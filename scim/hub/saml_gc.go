package hub

import "github.com/connectsso/connect/internal/gctune"

// Garbage-collector tuning of `hub serve`.
//
// An SSO answer allocates about 110 KB (most of it crewjam's parse of the
// AuthnRequest: a 32 KiB inflate window, the XML decoder) around a live
// heap of a few tens of megabytes, so with Go's default GOGC=100 the
// collector runs every few dozen responses and takes a quarter of the CPU
// of an ECDSA-signed SSO. Collecting when the heap has grown by 400% instead
// of 100% divides the number of cycles by about four; the soft memory limit
// makes the collector run sooner whenever the heap nears it, so that memory
// stays bounded where the larger growth would not be (a login storm holds
// one 19 MiB argon2id block per hashing slot). docs/benchmarks.md ("SAML
// IdP") has the measurements, including the 500-login storm under 512 MB.
const (
	// DefaultGCPercent is the hub's GOGC.
	DefaultGCPercent = 400
	// DefaultMemoryLimit is the hub's soft memory limit (GOMEMLIMIT), in
	// bytes. Raise it with the heap a large deployment needs: a live heap
	// above the limit makes the collector run continuously (the runtime caps
	// it at half the CPU).
	DefaultMemoryLimit = 384 << 20
)

// GCSettings tune the garbage collector of the hub process (gctune.Settings:
// a zero field keeps the runtime's setting).
type GCSettings gctune.Settings

// DefaultGCSettings are the settings `hub serve` applies unless told
// otherwise.
func DefaultGCSettings() GCSettings {
	return GCSettings{Percent: DefaultGCPercent, MemoryLimit: DefaultMemoryLimit}
}

func (g GCSettings) validate() error { return gctune.Settings(g).Validate() }

// TuneGC applies g to this process and returns a function that restores
// the settings it replaced. It is for the process that serves the hub (and
// its benchmarks): the settings are process-wide.
func TuneGC(g GCSettings) (restore func()) { return gctune.Settings(g).Apply() }
