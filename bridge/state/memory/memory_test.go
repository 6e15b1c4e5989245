package memory_test

import (
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/bridge/state/memory"
	"github.com/connectsso/connect/bridge/state/statetest"
)

func TestConformance(t *testing.T) {
	statetest.RunHarness(t, func(tb testing.TB) statetest.Harness {
		c := statetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		return statetest.Harness{State: memory.New(memory.Config{Clock: c.Now}), Advance: c.Advance, Now: c.Now}
	})
}

// TestConformanceRealTime runs the suite on the wall clock too, as a bridge runs.
func TestConformanceRealTime(t *testing.T) {
	statetest.Run(t, func(tb testing.TB) state.State { return memory.New(memory.Config{}) })
}
