package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/connectsso/connect/scim/client"
)

// TestRedirectKeepsTokenHome: a redirect to another origin is refused, so the
// bearer token never leaves the configured origin. net/http itself forwards
// Authorization to any URL with the same host name, whatever the scheme or
// port, so an https base redirected to http:// on the same host would send
// the token in clear. A same-origin redirect still works.
func TestRedirectKeepsTokenHome(t *testing.T) {
	var leaked atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		writeJSON(w, map[string]any{"id": "u1", "userName": "elsewhere"})
	}))
	defer other.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/Users/away"):
			http.Redirect(w, r, other.URL+"/scim/v2/Users/away", http.StatusFound)
		case strings.HasSuffix(r.URL.Path, "/Users/moved"):
			http.Redirect(w, r, "/scim/v2/Users/here", http.StatusFound)
		case strings.HasSuffix(r.URL.Path, "/Users/here"):
			writeJSON(w, map[string]any{"id": "here", "userName": "home"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer origin.Close()

	for _, mod := range []func(*client.Config){nil, func(c *client.Config) { c.HTTPClient = &http.Client{} }} {
		c := newClient(t, origin.URL, "secret-token", func(cfg *client.Config) {
			cfg.MaxRetries = -1
			if mod != nil {
				mod(cfg)
			}
		})
		if _, err := c.GetUser(context.Background(), "away"); err == nil {
			t.Errorf("cross-origin redirect followed")
		}
		if n := leaked.Load(); n != 0 {
			t.Fatalf("the token reached another origin %d times", n)
		}
		u, err := c.GetUser(context.Background(), "moved")
		if err != nil || u.ID != "here" {
			t.Errorf("same-origin redirect: %+v, %v", u, err)
		}
	}
}
