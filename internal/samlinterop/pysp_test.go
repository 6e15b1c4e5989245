package samlinterop

import (
	"encoding/json"
	"path/filepath"
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
