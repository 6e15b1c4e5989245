package samlinterop

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// pySPLogin runs a Python SP (script in testdata), registers it with provider
// (by metadata URL, or by a metadata file when byFile), logs in through it and
// returns what its ACS decided.
func pySPLogin(tb testing.TB, provider idp, script string, byFile bool, user, password string) spResult {
	tb.Helper()
	sp := startPySP(tb, script, provider)
	md := sp.Base + "/metadata"
	if byFile {
		md = writeFile(tb, tb.TempDir(), "sp-metadata.xml", fetch(tb, md))
	}
	if got := provider.AddSP(tb, md); got != sp.EntityID {
		tb.Errorf("sps add printed %q, want the SP's entity ID %q", got, sp.EntityID)
	}
	_, final := ssoLogin(tb, newBrowser(tb), sp.Base+"/login", user, password)
	var res spResult
	if err := json.Unmarshal([]byte(final.Body), &res); err != nil {
		tb.Fatalf("%s ACS answer is not its JSON: %v\n%s", filepath.Base(script), err, final)
	}
	return res
}

// TestOneLoginStrict: python3-onelogin-saml2 in strict mode, with signed
// AuthnRequests and InResponseTo checked against the request it sent, accepts
// the hub's response and reads the user's persistent NameID and attributes.
// The SP is registered by its metadata URL.
func TestOneLoginStrict(t *testing.T) {
	h := startHub(t)
	u := h.createUser(t, ada())
	res := pySPLogin(t, h, "onelogin_sp.py", false, u.UserName, u.Password)
	if !res.OK {
		t.Fatalf("onelogin refused the hub's response: %v (%s)", res.Errors, res.Reason)
	}
	checkIdentity(t, "onelogin", res.NameID, res.NameIDFormat, res.Attributes, u)
	if res.SessionIndex == "" {
		t.Error("onelogin: no SessionIndex in the AuthnStatement")
	}
	if res.RelayState != "/after-login" {
		t.Errorf("RelayState came back as %q, want the SP's %q", res.RelayState, "/after-login")
	}
}

// TestLasso: python3-lasso (the library under mod_auth_mellon) processes the
// hub's response with signature verification forced and accepts the SSO; the
// SP is registered from a metadata file.
func TestLasso(t *testing.T) {
	h := startHub(t)
	u := h.createUser(t, ada())
	res := pySPLogin(t, h, "lasso_sp.py", true, u.UserName, u.Password)
	if !res.OK {
		t.Fatalf("lasso refused the hub's response: %v", res.Errors)
	}
	checkIdentity(t, "lasso", res.NameID, res.NameIDFormat, res.Attributes, u)
}

// sloEvent is one message the Python SP's /sls processed.
type sloEvent struct {
	Kind   string   `json:"kind"`
	OK     bool     `json:"ok"`
	Errors []string `json:"errors"`
}

// followSAMLForms submits the forms carrying SAML messages (the HTTP-POST
// binding pages of IdP and SP) until the browser reaches a page without one,
// or a page under stop.
func followSAMLForms(b *browser, p *page, stop string) *page {
	b.tb.Helper()
	for i := 0; i < 6 && !strings.HasPrefix(p.URL.String(), stop); i++ {
		f, ok := p.formWith("SAMLRequest")
		if !ok {
			f, ok = p.formWith("SAMLResponse")
		}
		if !ok {
			break
		}
		p = b.submit(p, f, nil)
	}
	return p
}

// TestOneLoginSLO: single logout with python3-onelogin-saml2 in strict mode,
// both ways. Started at the SP, the hub answers its signed LogoutRequest with a
// signed LogoutResponse that onelogin accepts (InResponseTo checked) and the
// hub session is over. Started at the hub (/logout), the hub sends onelogin a
// signed LogoutRequest that it accepts and answers.
func TestOneLoginSLO(t *testing.T) {
	h := startHub(t)
	u := h.createUser(t, ada())
	sp := startPySP(t, "onelogin_sp.py", h)
	h.AddSP(t, sp.Base+"/metadata")
	events := func(t *testing.T) []sloEvent {
		var ev []sloEvent
		if err := json.Unmarshal(fetch(t, sp.Base+"/events"), &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}

	t.Run("started at the SP", func(t *testing.T) {
		b := newBrowser(t)
		if res := loginWith(t, b, sp.Base, u.UserName, u.Password); !res.OK {
			t.Fatalf("login: %v (%s)", res.Errors, res.Reason)
		}
		p := followSAMLForms(b, b.get(sp.Base+"/logout"), sp.Base)
		var res struct {
			OK     bool     `json:"ok"`
			Kind   string   `json:"kind"`
			Errors []string `json:"errors"`
		}
		if err := json.Unmarshal([]byte(p.Body), &res); err != nil || !res.OK || res.Kind != "LogoutResponse" {
			t.Fatalf("onelogin's /sls after the hub's answer: %v %+v\n%s", err, res, p)
		}
		if p = b.get(sp.Base + "/login"); !hasLoginForm(p) {
			t.Errorf("after single logout the hub session should be over; got %s", p)
		}
	})

	t.Run("started at the hub", func(t *testing.T) {
		b := newBrowser(t)
		if res := loginWith(t, b, sp.Base, u.UserName, u.Password); !res.OK {
			t.Fatalf("login: %v (%s)", res.Errors, res.Reason)
		}
		seen := len(events(t))
		p := b.get(h.base + "/logout")
		// The hub asks to confirm with a form (CSRF-protected).
		for _, f := range p.Forms {
			if strings.HasSuffix(f.Action, "/logout") && strings.EqualFold(f.Method, "POST") {
				p = b.submit(p, f, nil)
				break
			}
		}
		p = followSAMLForms(b, p, "\x00")
		ev := events(t)
		if len(ev) <= seen {
			t.Fatalf("onelogin received no LogoutRequest from the hub; the browser ended at %s\nhub log:\n%s", p, h.logs.String())
		}
		if e := ev[seen]; e.Kind != "LogoutRequest" || !e.OK {
			t.Errorf("onelogin and the hub's LogoutRequest: %+v", e)
		}
		if !strings.HasPrefix(p.URL.String(), h.base) || p.Status != 200 {
			t.Errorf("after the SP answered, the browser should be back at the hub; got %s", p)
		}
		if p = b.get(sp.Base + "/login"); !hasLoginForm(p) {
			t.Errorf("after logout at the hub, want the login form again; got %s", p)
		}
	})
}

// loginWith logs in through the SP at spBase in b and returns its verdict.
func loginWith(tb testing.TB, b *browser, spBase, user, password string) spResult {
	tb.Helper()
	_, final := ssoLogin(tb, b, spBase+"/login", user, password)
	var res spResult
	if err := json.Unmarshal([]byte(final.Body), &res); err != nil {
		tb.Fatalf("SP answer: %v\n%s", err, final)
	}
	return res
}

// hasLoginForm reports whether p is a login form.
func hasLoginForm(p *page) bool { _, _, _, ok := p.loginForm(); return ok }
