package hub

import (
	"runtime/debug"
	"testing"
)

// The parsing and applying mechanics are internal/gctune's (and tested
// there); these tests hold the hub's use of them.

func TestGCSettingsValidate(t *testing.T) {
	for _, tt := range []struct {
		g  GCSettings
		ok bool
	}{
		{GCSettings{}, true}, {DefaultGCSettings(), true}, {GCSettings{Percent: -1, MemoryLimit: 1 << 30}, true},
		{GCSettings{Percent: -1}, false}, {GCSettings{MemoryLimit: -1}, false},
	} {
		if err := (SAMLConfig{GC: tt.g}).validate(); (err == nil) != tt.ok {
			t.Errorf("validate(%+v) = %v, want ok %v", tt.g, err, tt.ok)
		}
	}
}

// TestTuneGC: the hub's defaults apply to the process and the returned
// function puts back what they replaced.
func TestTuneGC(t *testing.T) {
	percent0 := debug.SetGCPercent(-1)
	debug.SetGCPercent(percent0)
	limit0 := debug.SetMemoryLimit(-1)

	restore := TuneGC(DefaultGCSettings())
	if p := debug.SetGCPercent(DefaultGCPercent); p != DefaultGCPercent {
		t.Errorf("GC percent %d, want %d", p, DefaultGCPercent)
	}
	if l := debug.SetMemoryLimit(-1); l != DefaultMemoryLimit {
		t.Errorf("memory limit %d, want %d", l, DefaultMemoryLimit)
	}
	restore()
	if p := debug.SetGCPercent(percent0); p != percent0 {
		t.Errorf("restored GC percent %d, want %d", p, percent0)
	}
	if l := debug.SetMemoryLimit(-1); l != limit0 {
		t.Errorf("restored memory limit %d, want %d", l, limit0)
	}
}
