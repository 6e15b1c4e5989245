// Package gctune sets the garbage collector of a serving process: GOGC and the
// soft memory limit (GOMEMLIMIT), read from flags such as --gc-percent 400 and
// --memory-limit 384MiB. The numbers are the caller's (the hub and the bridge
// have their own, and their reasons, beside their defaults); this package holds
// only the mechanics they share. It imports the standard library only.
package gctune

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Settings tune the garbage collector of a process. A zero field keeps the
// runtime's setting (GOGC, GOMEMLIMIT or their defaults).
type Settings struct {
	// Percent is GOGC: the heap growth over the live heap, in percent,
	// that starts a collection. Negative turns the collector off (only
	// sensible with MemoryLimit).
	Percent int
	// MemoryLimit is the soft memory limit in bytes (GOMEMLIMIT).
	MemoryLimit int64
}

// Validate reports settings the runtime cannot honour sensibly.
func (s Settings) Validate() error {
	if s.MemoryLimit < 0 {
		return errors.New("memory limit must not be negative")
	}
	if s.Percent < 0 && s.MemoryLimit == 0 {
		return errors.New("a GC percent of off needs a memory limit")
	}
	return nil
}

// Apply sets s on this process and returns a function that restores the
// settings it replaced. The settings are process-wide: call it from the
// process that serves (or from its benchmarks) only.
func (s Settings) Apply() (restore func()) {
	prevPercent, prevLimit := 0, int64(-1)
	setPercent := s.Percent != 0
	if setPercent {
		prevPercent = debug.SetGCPercent(s.Percent)
	}
	if s.MemoryLimit > 0 {
		prevLimit = debug.SetMemoryLimit(s.MemoryLimit)
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

// UnderEnv gives the runtime's own variables their say: a set GOGC (or
// GOMEMLIMIT) wins over a default, so its field becomes zero (keep the
// runtime's), unless the operator gave the setting explicitly (percentSet,
// limitSet: a flag, its environment variable or a config file).
func (s Settings) UnderEnv(percentSet, limitSet bool) Settings {
	if !percentSet && os.Getenv("GOGC") != "" {
		s.Percent = 0
	}
	if !limitSet && os.Getenv("GOMEMLIMIT") != "" {
		s.MemoryLimit = 0
	}
	return s
}

// ParsePercent reads a GC percent: an integer > 0, "off", or "" / "0"
// (keep the runtime's).
func ParsePercent(s string) (int, error) {
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

var units = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseMemoryLimit reads a memory size as GOMEMLIMIT writes it: a number
// of bytes with an optional unit B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB,
// powers of 1000); "" or "0" keeps the runtime's limit.
func ParseMemoryLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
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

// FormatMemoryLimit writes n as ParseMemoryLimit reads it, in the largest
// binary unit that divides it ("128MiB"); 0 is "0".
func FormatMemoryLimit(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
