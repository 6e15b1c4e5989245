package main

import (
	"runtime/debug"
	"testing"

	"github.com/connectsso/connect/bridge/sso"
)

// TestSyncGC: `bridge sync` runs at its GOGC under the serving bridge's soft
// limit and restores both after; an operator's GOGC / GOMEMLIMIT wins.
func TestSyncGC(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	percent, limit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(percent)
	restore := tuneSyncGC()
	if got := debug.SetGCPercent(-1); got != syncGCPercent {
		t.Errorf("GOGC during the sync %d, want %d", got, syncGCPercent)
	}
	debug.SetGCPercent(syncGCPercent)
	if got := debug.SetMemoryLimit(-1); got != sso.DefaultMemoryLimit {
		t.Errorf("memory limit during the sync %d, want %d", got, sso.DefaultMemoryLimit)
	}
	restore()
	if got := debug.SetGCPercent(-1); got != percent {
		t.Errorf("GOGC after the sync %d, want %d", got, percent)
	}
	debug.SetGCPercent(percent)
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("memory limit after the sync %d, want %d", got, limit)
	}

	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	restore = tuneSyncGC()
	if got := debug.SetGCPercent(-1); got != percent {
		t.Errorf("GOGC with GOGC set %d, want it kept (%d)", got, percent)
	}
	debug.SetGCPercent(percent)
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("memory limit with GOMEMLIMIT set %d, want it kept (%d)", got, limit)
	}
	restore()
}
