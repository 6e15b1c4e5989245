package sp

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"io"
	"testing"

	"github.com/crewjam/saml"
)

// TestRedirectURL checks the pooled encoder against crewjam's
// AuthnRequest.Redirect: the same query parameters around the same request
// XML, for many requests in a row (the pool's reset compressors), and
// crewjam's signed query when requests are signed.
func TestRedirectURL(t *testing.T) {
	inflate := func(t *testing.T, v string) []byte {
		t.Helper()
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, sign := range []bool{false, true} {
		f := newFixture(t, fixtureOpts{sign: sign})
		s := f.replicas[0]
		hubs, err := s.connectedHubs(context.Background())
		if err != nil || len(hubs) != 1 {
			t.Fatalf("hubs: %v %d", err, len(hubs))
		}
		h := hubs[0]
		loc := h.sp.GetSSOBindingLocation(saml.HTTPRedirectBinding)
		for i := 0; i < 20; i++ {
			req, err := h.sp.MakeAuthenticationRequest(loc, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
			if err != nil {
				t.Fatal(err)
			}
			tok := newToken()
			got, err := s.redirectURL(h, req, tok)
			if err != nil {
				t.Fatal(err)
			}
			want, err := req.Redirect(tok, h.sp)
			if err != nil {
				t.Fatal(err)
			}
			if sign {
				// crewjam signs: the URL is crewjam's own.
				if got.Query().Get("Signature") == "" || got.Query().Get("SigAlg") == "" {
					t.Fatalf("signed request without a signature: %s", got)
				}
			}
			gq, wq := got.Query(), want.Query()
			if got.Scheme != want.Scheme || got.Host != want.Host || got.Path != want.Path {
				t.Fatalf("destination %s, want %s", got, want)
			}
			if gq.Get("RelayState") != tok || wq.Get("RelayState") != tok {
				t.Fatalf("RelayState %q / %q, want %q", gq.Get("RelayState"), wq.Get("RelayState"), tok)
			}
			if g, w := inflate(t, gq.Get("SAMLRequest")), inflate(t, wq.Get("SAMLRequest")); !bytes.Equal(g, w) {
				t.Fatalf("request XML differs:\n got %s\nwant %s", g, w)
			}
			if !sign && len(gq) != 2 {
				t.Fatalf("unsigned query has %d parameters: %s", len(gq), got.RawQuery)
			}
		}
	}
}
