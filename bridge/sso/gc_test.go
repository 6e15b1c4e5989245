package sso

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	before, beforeLimit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(before)
	restore := TuneGC(GCSettings{Percent: 321, MemoryLimit: 123 << 20})
	if got := debug.SetGCPercent(321); got != 321 {
		t.Errorf("GOGC %d, want 321", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 123<<20 {
		t.Errorf("memory limit %d, want %d", got, 123<<20)
	}
	restore()
	if got := debug.SetGCPercent(before); got != before {
		t.Errorf("restored GOGC %d, want %d", got, before)
	}
	if got := debug.SetMemoryLimit(-1); got != beforeLimit {
		t.Errorf("restored memory limit %d, want %d", got, beforeLimit)
	}
	// Zero keeps the runtime's settings.
	TuneGC(GCSettings{})()
	if got := debug.SetGCPercent(before); got != before {
		t.Errorf("GOGC %d after a zero setting, want %d", got, before)
	}
}
