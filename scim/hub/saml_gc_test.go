package hub

import (
	"runtime/debug"
	"testing"
)

func TestParseGCSettings(t *testing.T) {
	percents := []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"400", 400, true}, {" 50 ", 50, true}, {"off", -1, true}, {"OFF", -1, true},
		{"-3", 0, false}, {"x", 0, false}, {"4.5", 0, false},
	}
	for _, tt := range percents {
		got, err := ParseGCPercent(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseGCPercent(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	limits := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"384MiB", 384 << 20, true}, {"2GiB", 2 << 30, true}, {"1.5 GiB", 3 << 29, true},
		{"512MB", 512e6, true}, {"1024", 1024, true}, {"10B", 10, true}, {"64KiB", 64 << 10, true},
		{"12zz", 0, false}, {"-1MiB", 0, false}, {"MiB", 0, false}, {"9999999TiB", 0, false}, {"NaN", 0, false},
	}
	for _, tt := range limits {
		got, err := ParseMemoryLimit(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

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

// TestTuneGC: the settings apply to the process and the returned function
// puts back what they replaced; zero fields leave the runtime's alone.
func TestTuneGC(t *testing.T) {
	percent0 := debug.SetGCPercent(-1)
	debug.SetGCPercent(percent0)
	limit0 := debug.SetMemoryLimit(-1)

	restore := TuneGC(GCSettings{Percent: 321, MemoryLimit: 300 << 20})
	if p := debug.SetGCPercent(321); p != 321 {
		t.Errorf("GC percent %d, want 321", p)
	}
	if l := debug.SetMemoryLimit(-1); l != 300<<20 {
		t.Errorf("memory limit %d, want %d", l, 300<<20)
	}
	restore()
	if p := debug.SetGCPercent(percent0); p != percent0 {
		t.Errorf("restored GC percent %d, want %d", p, percent0)
	}
	if l := debug.SetMemoryLimit(-1); l != limit0 {
		t.Errorf("restored memory limit %d, want %d", l, limit0)
	}

	restore = TuneGC(GCSettings{})
	if p := debug.SetGCPercent(percent0); p != percent0 {
		t.Errorf("zero settings changed the GC percent to %d", p)
	}
	if l := debug.SetMemoryLimit(-1); l != limit0 {
		t.Errorf("zero settings changed the memory limit to %d", l)
	}
	restore()
}
