package bridge_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/saml/sp"
	"github.com/connectsso/connect/scim/hub"
)

// restart serves the hub again on the same address and store (a running hub
// re-reads its keys only now and then).
func (h *inHub) restart(t *testing.T) {
	t.Helper()
	h.stop()
	addr := strings.TrimPrefix(h.url, "http://")
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	h.serve(t, ln)
}

// TestHubMetadataRefresh follows a hub signing-key rollover: a bridge that
// refreshes during the overlap keeps trusting the hub; metadata signed by a key
// the pinned copy never listed is refused.
func TestHubMetadataRefresh(t *testing.T) {
	ctx := context.Background()
	h := startInHub(t)
	b := startInBridge(t)
	if _, err := hub.AddClient(ctx, h.st, h.connect(), b.url, b.secret(t, time.Hour), hub.ClientOptions{Name: "Site"}); err != nil {
		t.Fatal(err)
	}
	first := b.servers(t)[0].Hub.Metadata
	refresh := func() []bridge.MetadataRefresh {
		t.Helper()
		res, err := bridge.RefreshHubMetadata(ctx, b.dir, &http.Client{Timeout: 10 * time.Second}, sp.VerifyMetadataUpdate)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 {
			t.Fatalf("refreshed %d servers, want 1", len(res))
		}
		return res
	}
	if r := refresh(); r[0].Err != nil {
		t.Fatalf("refresh with no change: %v", r[0].Err)
	}

	if _, err := hub.RotateSigningKey(ctx, h.st, "test", h.url, "rsa", 2*time.Second, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.restart(t) // publishes the next key beside the current one
	if r := refresh(); r[0].Err != nil || !r[0].Changed {
		t.Fatalf("refresh during the overlap = %+v", r[0])
	}
	overlap := b.servers(t)[0].Hub.Metadata
	time.Sleep(2500 * time.Millisecond)
	h.restart(t) // signs with the new key now
	if r := refresh(); r[0].Err != nil || !r[0].Changed {
		t.Fatalf("refresh after the switch = %+v", r[0])
	}
	final := b.servers(t)[0].Hub.Metadata
	if err := sp.VerifyMetadataUpdate(overlap, final); err != nil {
		t.Fatalf("metadata after the switch not trusted from the overlap copy: %v", err)
	}
	// A bridge that slept through the whole overlap cannot be walked onto a
	// key its pinned copy never listed.
	if err := sp.VerifyMetadataUpdate(first, final); err == nil {
		t.Fatalf("metadata signed by a key the pinned copy never listed was accepted")
	}
	// Tampered metadata is refused.
	bad := []byte(strings.Replace(string(final), `Location="`+h.url, `Location="https://evil.example`, 1))
	if string(bad) == string(final) {
		t.Fatal("the test did not alter the metadata")
	}
	if err := sp.VerifyMetadataUpdate(final, bad); err == nil {
		t.Fatalf("altered metadata was accepted")
	}
}
