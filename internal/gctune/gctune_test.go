package gctune

import (
	"runtime/debug"
	"testing"
)

func TestParse(t *testing.T) {
	percents := []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"400", 400, true}, {" 50 ", 50, true}, {"off", -1, true}, {"OFF", -1, true},
		{"-3", 0, false}, {"-5", 0, false}, {"x", 0, false}, {"4.5", 0, false}, {"nonsense", 0, false},
	}
	for _, tt := range percents {
		got, err := ParsePercent(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePercent(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	limits := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"384MiB", 384 << 20, true}, {"2GiB", 2 << 30, true}, {"1.5 GiB", 3 << 29, true},
		{"512MB", 512e6, true}, {"1024", 1024, true}, {"10B", 10, true}, {"64KiB", 64 << 10, true}, {"1TiB", 1 << 40, true},
		{"12zz", 0, false}, {"-1MiB", 0, false}, {"MiB", 0, false}, {"9999999TiB", 0, false}, {"NaN", 0, false},
		{"nonsense", 0, false}, {"Inf", 0, false},
	}
	for _, tt := range limits {
		got, err := ParseMemoryLimit(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestFormatMemoryLimit: what it writes reads back to the same number (the
// flags' defaults are written with it).
func TestFormatMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		in   int64
		want string
	}{
		{0, "0"}, {128 << 20, "128MiB"}, {384 << 20, "384MiB"}, {2 << 30, "2GiB"}, {3 << 40, "3TiB"},
		{1536 << 10, "1536KiB"}, {1000, "1000"},
	} {
		got := FormatMemoryLimit(tt.in)
		if got != tt.want {
			t.Errorf("FormatMemoryLimit(%d) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := ParseMemoryLimit(got); err != nil || back != tt.in {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d", got, back, err, tt.in)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		s  Settings
		ok bool
	}{
		{Settings{}, true}, {Settings{Percent: 400, MemoryLimit: 384 << 20}, true}, {Settings{Percent: -1, MemoryLimit: 1 << 30}, true},
		{Settings{Percent: -1}, false}, {Settings{MemoryLimit: -1}, false},
	} {
		if err := tt.s.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tt.s, err, tt.ok)
		}
	}
}

// TestUnderEnv: a set GOGC / GOMEMLIMIT wins over a default, and an explicit
// setting wins over them.
func TestUnderEnv(t *testing.T) {
	s := Settings{Percent: 200, MemoryLimit: 128 << 20}
	for _, tt := range []struct {
		gogc, gomemlimit     string
		percentSet, limitSet bool
		want                 Settings
	}{
		{"", "", false, false, s},
		{"", "", true, true, s},
		{"150", "", false, false, Settings{MemoryLimit: 128 << 20}},
		{"", "1GiB", false, false, Settings{Percent: 200}},
		{"150", "1GiB", false, false, Settings{}},
		{"150", "1GiB", true, false, Settings{Percent: 200}},
		{"150", "1GiB", false, true, Settings{MemoryLimit: 128 << 20}},
		{"150", "1GiB", true, true, s},
	} {
		t.Setenv("GOGC", tt.gogc)
		t.Setenv("GOMEMLIMIT", tt.gomemlimit)
		if got := s.UnderEnv(tt.percentSet, tt.limitSet); got != tt.want {
			t.Errorf("GOGC=%q GOMEMLIMIT=%q set %v/%v: %+v, want %+v", tt.gogc, tt.gomemlimit, tt.percentSet, tt.limitSet, got, tt.want)
		}
	}
}

// TestApply: the settings apply to the process and the returned function
// puts back what they replaced; zero fields leave the runtime's alone.
func TestApply(t *testing.T) {
	percent0 := debug.SetGCPercent(-1)
	debug.SetGCPercent(percent0)
	limit0 := debug.SetMemoryLimit(-1)

	restore := Settings{Percent: 321, MemoryLimit: 300 << 20}.Apply()
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

	restore = Settings{}.Apply()
	if p := debug.SetGCPercent(percent0); p != percent0 {
		t.Errorf("zero settings changed the GC percent to %d", p)
	}
	if l := debug.SetMemoryLimit(-1); l != limit0 {
		t.Errorf("zero settings changed the memory limit to %d", l)
	}
	restore()
}
