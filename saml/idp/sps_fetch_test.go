package idp

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestLoadSPMetadataURL: `connect hub sps add --metadata URL` fetches over
// https (plain http only on loopback), refuses redirects naming where they
// point, and bounds the body and the time (DESIGN.md §8).
func TestLoadSPMetadataURL(t *testing.T) {
	const ok = "https://sp.example.org/acs"
	md := spMD(ok, "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact", ok, "https://sp.example.org/slo")
	ctx := context.Background()
	serve := func(h http.HandlerFunc) *httptest.Server {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv
	}
	good := serve(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(md) })
	tlsGood := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(md) }))
	t.Cleanup(tlsGood.Close)
	tlsRedirect := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, tlsGood.URL+"/md.xml", http.StatusFound)
	}))
	t.Cleanup(tlsRedirect.Close)
	var fetched bool
	attacker := serve(func(w http.ResponseWriter, r *http.Request) { fetched = true; _, _ = w.Write(md) })
	redirect := serve(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, attacker.URL+"/evil.xml", http.StatusMovedPermanently)
	})
	relRedirect := serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/elsewhere.xml")
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	huge := serve(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(md[:len(md)-len("</EntityDescriptor>")])
		_, _ = w.Write(bytes.Repeat([]byte(" "), MaxMetadataSize))
	})
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	slow := serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write(md[:100])
		w.(http.Flusher).Flush()
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})

	short := &http.Client{Timeout: 300 * time.Millisecond}
	tests := []struct {
		name   string
		client *http.Client
		url    string
		want   []string // substrings of the error; nil: success
	}{
		{"http on loopback", nil, good.URL + "/md.xml", nil},
		{"http on localhost", nil, strings.Replace(good.URL, "127.0.0.1", "localhost", 1) + "/md.xml", nil},
		{"https", tlsGood.Client(), tlsGood.URL + "/md.xml", nil},
		{"http off loopback", nil, "http://sp.example.org/md.xml", []string{"plain http is refused", "https"}},
		{"redirect to another host", nil, redirect.URL + "/md.xml", []string{"HTTP 301 redirects to " + attacker.URL + "/evil.xml", "not followed"}},
		{"relative redirect", nil, relRedirect.URL + "/md.xml", []string{"redirects to " + relRedirect.URL + "/elsewhere.xml"}},
		{"https to https redirect", tlsRedirect.Client(), tlsRedirect.URL + "/md.xml", []string{"redirects to " + tlsGood.URL + "/md.xml"}},
		{"over MaxMetadataSize", nil, huge.URL + "/md.xml", []string{"larger than"}},
		{"slow body", short, slow.URL + "/md.xml", []string{"fetch metadata"}},
		{"not found", nil, notFound(t) + "/md.xml", []string{"HTTP 404"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before http.Client
			if tt.client != nil {
				before = *tt.client
			}
			start := time.Now()
			data, ed, err := LoadSPMetadata(ctx, tt.client, tt.url)
			if tt.want == nil {
				if err != nil || ed == nil || !bytes.Equal(data, md) {
					t.Fatalf("LoadSPMetadata: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadSPMetadata accepted %s", tt.url)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if tt.client != nil && tt.client.CheckRedirect != nil && before.CheckRedirect == nil {
				t.Error("the caller's client was changed")
			}
		})
	}
	if fetched {
		t.Error("the redirect target was fetched")
	}
}

// notFound starts a server that answers 404 everywhere.
func notFound(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.URL
}
