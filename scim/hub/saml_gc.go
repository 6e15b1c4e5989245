package hub

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

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

// GCSettings tune the garbage collector of the hub process. A zero field
// keeps the runtime's setting (GOGC, GOMEMLIMIT or their defaults).
type GCSettings struct {
	// Percent is GOGC: the heap growth over the live heap, in percent,
	// that starts a collection. Negative turns the collector off (only
	// sensible with MemoryLimit).
	Percent int
	// MemoryLimit is the soft memory limit in bytes (GOMEMLIMIT).
	MemoryLimit int64
}

// DefaultGCSettings are the settings `hub serve` applies unless told
// otherwise.
func DefaultGCSettings() GCSettings {
	return GCSettings{Percent: DefaultGCPercent, MemoryLimit: DefaultMemoryLimit}
}

func (g GCSettings) validate() error {
	if g.MemoryLimit < 0 {
		return errors.New("memory limit must not be negative")
	}
	if g.Percent < 0 && g.MemoryLimit == 0 {
		return errors.New("a GC percent of off needs a memory limit")
	}
	return nil
}

// TuneGC applies g to this process and returns a function that restores
// the settings it replaced. It is for the process that serves the hub (and
// its benchmarks): the settings are process-wide.
func TuneGC(g GCSettings) (restore func()) {
	prevPercent, prevLimit := -2, int64(-1)
	if g.Percent != 0 {
		prevPercent = debug.SetGCPercent(g.Percent)
	}
	if g.MemoryLimit != 0 {
		prevLimit = debug.SetMemoryLimit(g.MemoryLimit)
	}
	return func() {
		if prevPercent != -2 {
			debug.SetGCPercent(prevPercent)
		}
		if prevLimit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
	}
}

// ParseGCPercent reads a GC percent: an integer > 0, "off", or "" / "0"
// (keep the runtime's).
func ParseGCPercent(s string) (int, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "0":
		return 0, nil
	case "off":
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("GC percent %q: want a positive integer or off", s)
	}
	return n, nil
}

// ParseMemoryLimit reads a memory size as GOMEMLIMIT writes it: a number
// of bytes with an optional unit B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB,
// powers of 1000); "" or "0" keeps the runtime's limit.
func ParseMemoryLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := s, 1.0
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("memory limit %q: want a size such as 384MiB or 2GiB", s)
	}
	return int64(f * mult), nil
}
