package samlinterop

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// attemptLogin goes from start towards the IdP and, if the IdP shows its login
// form, submits user and password. It returns the last page, whatever it is.
func attemptLogin(tb testing.TB, b *browser, start, user, password string) *page {
	tb.Helper()
	p := followSAMLRequestForms(b, b.get(start))
	if f, userField, passField, ok := p.loginForm(); ok {
		p = b.submit(p, f, map[string]string{userField: user, passField: password})
	}
	return p
}

// checkRefused fails tb unless p is an error page of the IdP that carries no
// SAML response, with an HTTP status of at least minStatus.
func checkRefused(tb testing.TB, p *page, idpBase string, minStatus int) {
	tb.Helper()
	if strings.Contains(p.Body, "SAMLResponse") {
		tb.Errorf("the page carries a SAMLResponse: %s", p)
	}
	if !strings.HasPrefix(p.URL.String(), idpBase) {
		tb.Errorf("the browser left the IdP (a response reached the SP?): %s", p)
	}
	if p.Status < minStatus {
		tb.Errorf("status %d, want ≥ %d: %s", p.Status, minStatus, p)
	}
}

// deflateBase64 is the HTTP-Redirect encoding of a SAML message.
func deflateBase64(tb testing.TB, data []byte) string {
	tb.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// TestRefusals: what the hub must refuse, driven through real SPs (gosaml2)
// and the real binary: each gets an error page and no assertion.
func TestRefusals(t *testing.T) {
	h := startHub(t)
	u := h.createUser(t, ada())
	suspended := ada()
	suspended.UserName, suspended.Email, suspended.Audience, suspended.Course = "charles.babbage", "cb@example.org", "", ""
	suspended = h.createUser(t, suspended)
	h.scim(t, http.MethodPatch, "/Users/"+suspended.ID, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "active", "value": false}},
	}, nil)

	// registered is a gosaml2 SP the hub knows, with signed requests.
	registered := startGoSP(t, h)
	h.AddSP(t, writeFile(t, t.TempDir(), "registered.xml", registered.metadata(t, false)))

	// Each case names the hub metric sample that must count its refusal, so a
	// refusal for another reason (a broken test SP) does not pass.
	refusal := func(reason string) string { return `connect_hub_saml_refusals_total{reason="` + reason + `"}` }
	for _, tt := range []struct {
		name, counts string
		run          func(t *testing.T) *page
	}{{
		name: "unknown SP", counts: refusal("unknown_sp"),
		run: func(t *testing.T) *page {
			s := startGoSP(t, h) // never registered
			return attemptLogin(t, newBrowser(t), s.Base+"/login", u.UserName, u.Password)
		},
	}, {
		name: "ACS not in metadata", counts: refusal("acs_not_in_metadata"),
		run: func(t *testing.T) *page {
			s := startGoSP(t, h)
			h.AddSP(t, writeFile(t, t.TempDir(), "sp.xml", s.metadata(t, false)))
			s.sp.AssertionConsumerServiceURL = s.Base + "/not-in-metadata"
			return attemptLogin(t, newBrowser(t), s.Base+"/login", u.UserName, u.Password)
		},
	}, {
		name: "unsigned AuthnRequest from an SP whose metadata says it signs", counts: refusal("signature"),
		run: func(t *testing.T) *page {
			s := startGoSP(t, h)
			h.AddSP(t, writeFile(t, t.TempDir(), "sp.xml", s.metadata(t, false)))
			s.sp.SignAuthnRequests = false
			return attemptLogin(t, newBrowser(t), s.Base+"/login", u.UserName, u.Password)
		},
	}, {
		name: "javascript: ACS in submitted metadata", counts: refusal("unknown_sp"),
		run: func(t *testing.T) *page {
			s := startGoSP(t, h)
			md := bytes.Replace(s.metadata(t, false), []byte(s.Base+"/acs"), []byte("javascript:alert(document.cookie)//"), 1)
			if out, err := h.tryCLI("", "sps", "add", "--metadata", writeFile(t, t.TempDir(), "js.xml", md)); err == nil {
				t.Errorf("sps add accepted metadata with a javascript: ACS; printed %q", out)
			}
			return attemptLogin(t, newBrowser(t), s.Base+"/login", u.UserName, u.Password)
		},
	}, {
		name: "deflate bomb in SAMLRequest", counts: refusal("too_large"),
		run: func(t *testing.T) *page {
			// 32 MiB of one byte deflates to ~32 KiB: a request the hub must
			// refuse without inflating it all.
			bomb := deflateBase64(t, bytes.Repeat([]byte("<"), 32<<20))
			return newBrowser(t).get(h.base + "/saml/sso?" + url.Values{"SAMLRequest": {bomb}}.Encode())
		},
	}, {
		name: "wrong password", counts: `connect_hub_saml_logins_total{result="bad_credentials"}`,
		run: func(t *testing.T) *page {
			p := attemptLogin(t, newBrowser(t), registered.Base+"/login", u.UserName, u.Password+"x")
			if _, _, _, ok := p.loginForm(); !ok {
				t.Errorf("after a wrong password, want the login form again; got %s", p)
			}
			return p
		},
	}, {
		name: "suspended user", counts: refusal("suspended"),
		run: func(t *testing.T) *page {
			return attemptLogin(t, newBrowser(t), registered.Base+"/login", suspended.UserName, suspended.Password)
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			before := h.metric(t, tt.counts)
			checkRefused(t, tt.run(t), h.base, 400)
			if after := h.metric(t, tt.counts); after != before+1 {
				t.Errorf("%s went from %v to %v, want one more: refused for another reason?\n%s", tt.counts, before, after, h.logs.String())
			}
		})
	}
	t.Run("locked account, unlocked by the admin", func(t *testing.T) {
		locked := ada()
		locked.UserName, locked.Email, locked.Audience, locked.Course = "mary.somerville", "ms@example.org", "", ""
		locked = h.createUser(t, locked)
		// The default limit is 5 failures; the account is then locked, and the
		// right password changes nothing.
		for i := 0; i < 5; i++ {
			checkRefused(t, attemptLogin(t, newBrowser(t), registered.Base+"/login", locked.UserName, "wrong "+locked.Password), h.base, 400)
		}
		lockedSample := `connect_hub_saml_logins_total{result="locked"}`
		before := h.metric(t, lockedSample)
		checkRefused(t, attemptLogin(t, newBrowser(t), registered.Base+"/login", locked.UserName, locked.Password), h.base, 400)
		if after := h.metric(t, lockedSample); after != before+1 {
			t.Errorf("%s went from %v to %v: the right password after 5 failures was not refused as locked", lockedSample, before, after)
		}
		h.cli(t, "", "users", "unlock", locked.UserName)
		if res := loginAt(t, registered.Base, locked.UserName, locked.Password); !res.OK || res.NameID != locked.ID {
			t.Errorf("after `hub users unlock`, the login should work: %+v", res)
		}
	})
	t.Run("registered SP still works", func(t *testing.T) {
		// The refusals above changed nothing for a good request.
		_, final := ssoLogin(t, newBrowser(t), registered.Base+"/login", u.UserName, u.Password)
		if final.Status != http.StatusOK {
			t.Errorf("gosaml2 SP refused the response after the refusals: %s", final)
		}
	})
}
