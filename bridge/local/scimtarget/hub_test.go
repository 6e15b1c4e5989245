package scimtarget_test

import (
	"testing"

	"github.com/connectsso/connect/internal/testenv/hubproc"
)

// The connect binary is built once per test process.
func TestMain(m *testing.M) { hubproc.Main(m) }

// startHub runs a real `connect hub serve` on a fresh SQLite store (with
// sync-password-hashes on, so the hub stores and returns password hashes like a
// site application that keeps them) and returns its SCIM base URL and an admin
// token. The hub stops when t ends.
func startHub(t testing.TB) (scimBase, token string) {
	t.Helper()
	h := hubproc.StartHub(t, hubproc.HubOptions{AdminName: "bridge-target", Settings: []string{"sync-password-hashes=true"}})
	return h.SCIM, h.Admin
}
