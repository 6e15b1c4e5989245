package scimtarget_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/local/scimtarget"
)

// TestRedirectKeepsTokenHome: the target's token (and the accounts and
// password hashes in request bodies) never follow a redirect to another
// origin; net/http would send Authorization to any URL with the same host
// name, http:// or another port included. A same-origin redirect still works.
func TestRedirectKeepsTokenHome(t *testing.T) {
	var leaked atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		w.Header().Set("Content-Type", "application/scim+json")
		_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]}`))
	}))
	defer other.Close()
	var away atomic.Bool
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/scim/ServiceProviderConfig") && away.Load():
			http.Redirect(w, r, other.URL+"/scim/ServiceProviderConfig", http.StatusTemporaryRedirect)
		case strings.HasPrefix(r.URL.Path, "/scim/ServiceProviderConfig"):
			http.Redirect(w, r, "/final/ServiceProviderConfig", http.StatusTemporaryRedirect)
		case r.URL.Path == "/final/ServiceProviderConfig":
			w.Header().Set("Content-Type", "application/scim+json")
			_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer origin.Close()

	tg := newTarget(t, scimtarget.Config{BaseURL: origin.URL + "/scim", Token: "target-secret", MaxRetries: 1,
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	if err := tg.Ping(context.Background()); err != nil {
		t.Fatalf("same-origin redirect: %v", err)
	}
	away.Store(true)
	if err := tg.Ping(context.Background()); err == nil {
		t.Errorf("cross-origin redirect followed")
	}
	if n := leaked.Load(); n != 0 {
		t.Fatalf("the token reached another origin %d times", n)
	}
}
