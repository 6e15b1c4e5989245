package scimtarget_test

import (
	"context"
	"testing"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/localtest"
	"github.com/connectsso/connect/bridge/local/scimtarget"
)

func newTarget(t testing.TB, cfg scimtarget.Config) *scimtarget.Target {
	t.Helper()
	if cfg.BaseURL == "" {
		cfg.BaseURL, cfg.Token = startHub(t)
	}
	tg, err := scimtarget.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// TestConformance provisions into a real Connect hub standing in for a site
// application that speaks SCIM with the Connect extension.
func TestConformance(t *testing.T) {
	localtest.Run(t, func(t testing.TB) local.Directory {
		return newTarget(t, scimtarget.Config{Extension: true, Metadata: true, PasswordHashes: true})
	})
}

// TestConformancePlain uses core SCIM and the enterprise extension only, as a
// site application without the Connect extension would.
func TestConformancePlain(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	localtest.Run(t, func(t testing.TB) local.Directory {
		return newTarget(t, scimtarget.Config{})
	})
}
