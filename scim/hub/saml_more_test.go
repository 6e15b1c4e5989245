package hub

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	"golang.org/x/crypto/bcrypt"

	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim"
)

// wantRefusal checks an error page: the status, the title, and no
// SAMLResponse anywhere in it.
func wantRefusal(t *testing.T, code int, page string, status int, title string) {
	t.Helper()
	if code != status {
		t.Fatalf("status %d, want %d:\n%s", code, status, page)
	}
	if !strings.Contains(page, `<h1 id="title">`+title+`</h1>`) {
		t.Fatalf("page does not have title %q:\n%s", title, page)
	}
	if strings.Contains(page, "SAMLResponse") {
		t.Fatalf("refusal page carries a SAMLResponse:\n%s", page)
	}
}

// loggedIn returns a browser with a hub session for user.
func (e *samlEnv) loggedIn(t *testing.T, user, pw string) *http.Client {
	t.Helper()
	c := e.browser(t)
	_, page := browse(t, c, e.hub.URL+idp.PathLogin)
	code, page := e.submitLogin(t, c, page, user, pw)
	if code != 200 || !strings.Contains(page, "Logged in") {
		t.Fatalf("login: %d\n%s", code, page)
	}
	return c
}

func TestSAMLRefusals(t *testing.T) {
	e := newSAMLEnv(t, nil)
	e.addUser(t, "alice", "pw-alice", true)
	registered := e.newSP(t, true, nil)

	t.Run("unknown SP", func(t *testing.T) {
		stranger := e.newSP(t, false, nil)
		c := e.loggedIn(t, "alice", "pw-alice")
		code, page := browse(t, c, stranger.srv.URL+"/app")
		wantRefusal(t, code, page, http.StatusForbidden, "Unknown application")
	})

	t.Run("ACS not in metadata", func(t *testing.T) {
		sp := registered.mw.ServiceProvider
		req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		req.AssertionConsumerServiceURL = "https://evil.example/acs"
		u, err := req.Redirect("", &sp)
		if err != nil {
			t.Fatal(err)
		}
		c := e.loggedIn(t, "alice", "pw-alice")
		code, page := browse(t, c, u.String())
		wantRefusal(t, code, page, http.StatusForbidden, "Login address not allowed")
	})

	t.Run("deflate bomb", func(t *testing.T) {
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestCompression)
		fw.Write([]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0">`))
		chunk := bytes.Repeat([]byte("A"), 1<<20)
		for range 50 { // 50 MiB inflated
			fw.Write(chunk)
		}
		fw.Close()
		q := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(buf.Bytes())}}
		c := e.loggedIn(t, "alice", "pw-alice")
		code, page := browse(t, c, e.hub.URL+idp.PathSSO+"?"+q.Encode())
		wantRefusal(t, code, page, http.StatusBadRequest, "Bad request")
		// Also through a login form that carries it.
		c2 := e.browser(t)
		_, login := browse(t, c2, e.hub.URL+idp.PathLogin)
		_, v := formFields(login)
		v.Set(idp.FieldSAMLKind, "redirect")
		v.Set(idp.FieldSAMLQuery, q.Encode())
		v.Set(idp.FieldUserName, "alice")
		v.Set(idp.FieldPassword, "pw-alice")
		code, page = submit(t, c2, e.hub.URL+idp.PathLogin, v)
		wantRefusal(t, code, page, http.StatusBadRequest, "Bad request")
	})

	t.Run("unsigned request where signing is required", func(t *testing.T) {
		signing := e.newSP(t, true, func(o *samlsp.Options) { o.SignRequest = true })
		if !strings.Contains(string(signing.metadata(t)), `AuthnRequestsSigned="true"`) {
			t.Fatal("SP metadata does not require signed requests")
		}
		// The signing SP itself works.
		c := e.loggedIn(t, "alice", "pw-alice")
		code, page := browse(t, c, signing.srv.URL+"/app")
		if code != 200 || !strings.Contains(page, "SAMLResponse") {
			t.Fatalf("signed request: %d\n%s", code, page)
		}
		// The same request without its signature is refused.
		sp := signing.mw.ServiceProvider
		sp.SignatureMethod = ""
		u, err := sp.MakeRedirectAuthenticationRequest("")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(u.RawQuery, "Signature=") {
			t.Fatal("request is signed")
		}
		code, page = browse(t, c, u.String())
		wantRefusal(t, code, page, http.StatusForbidden, "Request not signed")
	})

	t.Run("SHA-1 signed request", func(t *testing.T) {
		signing := e.newSP(t, true, func(o *samlsp.Options) { o.SignRequest = true })
		sp := signing.mw.ServiceProvider
		sp.SignatureMethod = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
		u, err := sp.MakeRedirectAuthenticationRequest("")
		if err != nil {
			t.Fatal(err)
		}
		c := e.loggedIn(t, "alice", "pw-alice")
		code, page := browse(t, c, u.String())
		if code < 400 || strings.Contains(page, "SAMLResponse") {
			t.Fatalf("SHA-1 request answered: %d\n%s", code, page)
		}
	})

	t.Run("javascript ACS in metadata", func(t *testing.T) {
		sp := e.newSP(t, false, nil)
		md := sp.metadata(t)
		for _, bad := range []string{"javascript:alert(document.cookie)", "data:text/html,hi", "//evil.example/acs"} {
			evil := bytes.Replace(md, []byte(sp.srv.URL+"/saml/acs"), []byte(bad), 1)
			if bytes.Equal(evil, md) {
				t.Fatal("ACS URL not found in metadata")
			}
			_, err := RegisterServiceProvider(context.Background(), e.st, "test", evil, "evil.xml", false)
			if !errors.Is(err, idp.ErrBadMetadata) {
				t.Errorf("ACS %q: err %v, want ErrBadMetadata", bad, err)
			}
		}
		// An unknown binding does not hide it either.
		evil := bytes.Replace(md, []byte(`Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="`+sp.srv.URL+"/saml/acs"),
			[]byte(`Binding="urn:example:other" Location="javascript:alert(1)`), 1)
		if _, err := RegisterServiceProvider(context.Background(), e.st, "test", evil, "evil.xml", false); !errors.Is(err, idp.ErrBadMetadata) && !bytes.Equal(evil, md) {
			t.Errorf("unknown binding with javascript: ACS: %v", err)
		}
		list, _ := ListServiceProviders(context.Background(), e.st)
		for _, s := range list {
			if s.EntityID == sp.entityID() {
				t.Fatal("refused metadata was registered")
			}
		}
	})

	t.Run("suspended user", func(t *testing.T) {
		e.addUser(t, "sam", "pw-sam", false)
		c := e.browser(t)
		code, page := browse(t, c, registered.srv.URL+"/app")
		if code != 200 {
			t.Fatal(code, page)
		}
		code, page = e.submitLogin(t, c, page, "sam", "pw-sam")
		wantRefusal(t, code, page, http.StatusForbidden, "Account suspended")
	})

	t.Run("user suspended during a session", func(t *testing.T) {
		u := e.addUser(t, "susan", "pw-susan", true)
		c := e.loggedIn(t, "susan", "pw-susan")
		if _, err := e.st.UpdateUser(context.Background(), u.ID, 0, func(u *scim.User) error {
			u.Active = scim.BoolPtr(false)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		code, page := browse(t, c, registered.srv.URL+"/app")
		wantRefusal(t, code, page, http.StatusForbidden, "Account suspended")
	})

	t.Run("malformed requests", func(t *testing.T) {
		c := e.browser(t)
		for _, q := range []string{"", "SAMLRequest=%%%", "SAMLRequest=bm90IGRlZmxhdGU="} {
			code, page := browse(t, c, e.hub.URL+idp.PathSSO+"?"+q)
			if code != http.StatusBadRequest || strings.Contains(page, "SAMLResponse") {
				t.Errorf("query %q: %d\n%s", q, code, page)
			}
		}
	})
}

func TestSAMLLoginForm(t *testing.T) {
	e := newSAMLEnv(t, func(c *Config) {
		c.SAML.AccountLimit = 3
		c.SAML.AddressLimit = 8
	})
	e.addUser(t, "alice", "pw-alice", true)
	e.addUser(t, "bob", "pw-bob", true)
	sp := e.newSP(t, true, nil)

	failed := func(t *testing.T, code int, page string) {
		t.Helper()
		if code != http.StatusUnauthorized || !strings.Contains(page, `id="login-error"`) || !strings.Contains(page, "Login failed") || strings.Contains(page, "SAMLResponse") {
			t.Fatalf("want the generic failure, got %d:\n%s", code, page)
		}
	}

	t.Run("one message for every failure", func(t *testing.T) {
		c := e.browser(t)
		_, page := browse(t, c, e.hub.URL+idp.PathLogin)
		code, wrongPW := e.submitLogin(t, c, page, "alice", "nope")
		failed(t, code, wrongPW)
		code, unknown := e.submitLogin(t, c, page, "nobody", "nope")
		failed(t, code, unknown)
		strip := func(s string) string {
			_, v := formFields(s)
			return strings.ReplaceAll(strings.ReplaceAll(s, v.Get(idp.FieldCSRF), ""), `value="nobody"`, `value="alice"`)
		}
		if strip(wrongPW) != strip(unknown) {
			t.Fatalf("wrong password and unknown user differ:\n%s\n---\n%s", wrongPW, unknown)
		}
		if err := UnlockUser(context.Background(), e.st, "test", "alice"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		c := e.browser(t)
		_, page := browse(t, c, e.hub.URL+idp.PathLogin)
		_, v := formFields(page)
		v.Set(idp.FieldUserName, "alice")
		v.Set(idp.FieldPassword, "pw-alice")
		for name, mutate := range map[string]func(url.Values){
			"missing": func(v url.Values) { v.Del(idp.FieldCSRF) },
			"wrong":   func(v url.Values) { v.Set(idp.FieldCSRF, strings.Repeat("x", 43)) },
		} {
			w := url.Values{}
			for k, x := range v {
				w[k] = x
			}
			mutate(w)
			code, page := submit(t, c, e.hub.URL+idp.PathLogin, w)
			if code != http.StatusForbidden || strings.Contains(page, "Logged in") {
				t.Errorf("%s token: %d\n%s", name, code, page)
			}
		}
		// A fresh browser without the cookie, with a token from elsewhere.
		code, _ := submit(t, e.browser(t), e.hub.URL+idp.PathLogin, v)
		if code != http.StatusForbidden {
			t.Errorf("token without its cookie: %d", code)
		}
	})

	t.Run("lockout and unlock", func(t *testing.T) {
		c := e.browser(t)
		_, page := browse(t, c, e.hub.URL+idp.PathLogin)
		for range 3 {
			code, p := e.submitLogin(t, c, page, "bob", "wrong")
			failed(t, code, p)
		}
		code, p := e.submitLogin(t, c, page, "bob", "pw-bob")
		failed(t, code, p) // locked: the right password fails too
		if err := UnlockUser(context.Background(), e.st, "test", "BOB"); err != nil {
			t.Fatal(err)
		}
		code, p = e.submitLogin(t, c, page, "bob", "pw-bob")
		if code != 200 || !strings.Contains(p, "Logged in") {
			t.Fatalf("after unlock: %d\n%s", code, p)
		}
	})

	t.Run("source address throttle", func(t *testing.T) {
		c := e.browser(t)
		_, page := browse(t, c, e.hub.URL+idp.PathLogin)
		for i := range 8 {
			code, p := e.submitLogin(t, c, page, "nobody"+string(rune('a'+i)), "wrong")
			failed(t, code, p)
		}
		code, p := e.submitLogin(t, c, page, "alice", "pw-alice")
		failed(t, code, p)
		ctx := context.Background()
		ist := e.st
		if err := ist.ClearLoginThrottle(ctx, idp.AddressKey("127.0.0.1")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cookies and session rotation", func(t *testing.T) {
		c := e.browser(t)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		hubURL, _ := url.Parse(e.hub.URL)
		c.Jar.SetCookies(hubURL, []*http.Cookie{{Name: idp.CookieName(e.hub.URL, idp.SessionCookie), Value: "planted-by-attacker", Path: "/"}})
		login := func() string {
			t.Helper()
			_, page := browse(t, c, e.hub.URL+idp.PathLogin)
			_, v := formFields(page)
			if v.Get(idp.FieldCSRF) == "" { // the logged-in page has the logout form's token
				v.Set(idp.FieldCSRF, cookieValue(c, hubURL, idp.CookieName(e.hub.URL, idp.CSRFCookie)))
			}
			v.Set(idp.FieldUserName, "alice")
			v.Set(idp.FieldPassword, "pw-alice")
			resp, err := c.PostForm(e.hub.URL+idp.PathLogin, v)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("login: %d", resp.StatusCode)
			}
			for _, h := range resp.Header.Values("Set-Cookie") {
				if strings.HasPrefix(h, idp.CookieName(e.hub.URL, idp.SessionCookie)+"=") {
					for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Lax", "Path=/"} {
						if !strings.Contains(h, attr) {
							t.Errorf("session cookie %q lacks %s", h, attr)
						}
					}
					return strings.TrimPrefix(strings.Split(h, ";")[0], idp.CookieName(e.hub.URL, idp.SessionCookie)+"=")
				}
			}
			t.Fatal("no session cookie set")
			return ""
		}
		first := login()
		if first == "planted-by-attacker" {
			t.Fatal("planted session id kept")
		}
		if _, err := e.st.IdPSession(context.Background(), hashFor(first)); err != nil {
			t.Fatalf("session not stored under the cookie's hash: %v", err)
		}
		second := login()
		if second == first {
			t.Fatal("session id not rotated at login")
		}
		if _, err := e.st.IdPSession(context.Background(), hashFor(first)); err == nil {
			t.Fatal("the previous session survived a new login in the same browser")
		}
	})

	t.Run("bcrypt hash upgraded at login", func(t *testing.T) {
		h, _ := bcrypt.GenerateFromPassword([]byte("old-pw"), bcrypt.MinCost)
		u, err := e.st.CreateUser(context.Background(), scim.User{UserName: "legacy", Connect: &scim.ConnectUser{PasswordHash: strings.Replace(string(h), "$2a$", "$2y$", 1)}})
		if err != nil {
			t.Fatal(err)
		}
		e.loggedIn(t, "legacy", "old-pw")
		got, _ := e.st.GetUser(context.Background(), u.ID)
		if !strings.HasPrefix(got.Connect.PasswordHash, "$argon2id$") {
			t.Fatalf("hash not upgraded: %.10s", got.Connect.PasswordHash)
		}
		e.loggedIn(t, "legacy", "old-pw")
	})

	t.Run("user without password", func(t *testing.T) {
		e.addUser(t, "nopw", "", true)
		c := e.browser(t)
		_, page := browse(t, c, e.hub.URL+idp.PathLogin)
		code, p := e.submitLogin(t, c, page, "nopw", "")
		failed(t, code, p)
		code, p = e.submitLogin(t, c, page, "nopw", "anything")
		failed(t, code, p)
	})

	_ = sp
}

func (sp *testSP) entityID() string { return sp.mw.ServiceProvider.Metadata().EntityID }

func cookieValue(c *http.Client, u *url.URL, name string) string {
	for _, k := range c.Jar.Cookies(u) {
		if k.Name == name {
			return k.Value
		}
	}
	return ""
}

func hashFor(secret string) []byte {
	h := HashToken(secret) // SHA-256, as the IdP hashes session cookies
	return h
}

func TestSAMLBindingsAndIdPInitiated(t *testing.T) {
	e := newSAMLEnv(t, nil)
	e.addUser(t, "alice", "pw-alice", true, "Staff")

	t.Run("HTTP-POST binding", func(t *testing.T) {
		sp := e.newSP(t, true, func(o *samlsp.Options) { o.Binding = saml.HTTPPostBinding })
		c := e.browser(t)
		code, page := browse(t, c, sp.srv.URL+"/app")
		action, v := formFields(page)
		if code != 200 || v.Get("SAMLRequest") == "" || !strings.HasSuffix(action, idp.PathSSO) {
			t.Fatalf("SP did not post an AuthnRequest: %d\n%s", code, page)
		}
		// Without the hub's cookie (a browser's cross-site POST carries no
		// SameSite=Lax cookie) the hub posts the request to itself first.
		code, page = submit(t, c, action, v)
		again, rv := formFields(page)
		if code != 200 || !strings.Contains(page, `id="resubmit-form"`) || again != idp.PathSSO || rv.Get("SAMLRequest") != v.Get("SAMLRequest") {
			t.Fatalf("want the same-site repost: %d\n%s", code, page)
		}
		code, page = submit(t, c, e.hub.URL+again, rv)
		if code != 200 || !strings.Contains(page, `name="password"`) {
			t.Fatalf("hub login page: %d\n%s", code, page)
		}
		code, page = e.submitLogin(t, c, page, "alice", "pw-alice")
		if code != 200 {
			t.Fatal(code, page)
		}
		code, page = postResponse(t, c, page)
		if code != 200 || !strings.HasPrefix(page, "hello userName=alice") {
			t.Fatalf("app: %d %s", code, page)
		}

		// With a hub session: the cross-site POST (no cookies) is reposted,
		// and the repost (with the cookie) gets the Response at once.
		fresh := &http.Client{Transport: c.Transport, Timeout: 10 * time.Second}
		c2 := e.loggedIn(t, "alice", "pw-alice")
		_, page = browse(t, c2, sp.srv.URL+"/app")
		action, v = formFields(page)
		code, page = submit(t, fresh, action, v)
		again, rv = formFields(page)
		if code != 200 || again != idp.PathSSO {
			t.Fatalf("want the repost: %d\n%s", code, page)
		}
		code, page = submit(t, c2, e.hub.URL+again, rv)
		if code != 200 || !strings.Contains(page, "SAMLResponse") {
			t.Fatalf("repost with the session: %d\n%s", code, page)
		}
	})

	t.Run("IdP-initiated", func(t *testing.T) {
		sp := e.newSP(t, true, func(o *samlsp.Options) { o.AllowIDPInitiated = true; o.DefaultRedirectURI = "/app" })
		c := e.browser(t)
		u := e.hub.URL + idp.PathIdPInitiated + "?sp=" + url.QueryEscape(sp.entityID())
		code, page := browse(t, c, u)
		if code != 200 || !strings.Contains(page, `name="password"`) {
			t.Fatalf("want login page: %d\n%s", code, page)
		}
		code, page = e.submitLogin(t, c, page, "alice", "pw-alice")
		if code != 200 {
			t.Fatal(code, page)
		}
		code, page = postResponse(t, c, page)
		if code != 200 || !strings.HasPrefix(page, "hello userName=alice") {
			t.Fatalf("app: %d %s", code, page)
		}
		// With the session, straight to the SP.
		code, page = browse(t, c, u)
		if code != 200 || !strings.Contains(page, "SAMLResponse") {
			t.Fatalf("with session: %d %s", code, page)
		}
		for _, bad := range []string{"?sp=https%3A%2F%2Fnope.example%2F", "?sp=" + url.QueryEscape(sp.entityID()) + "&RelayState=https%3A%2F%2Fevil.example%2F",
			"?sp=" + url.QueryEscape(sp.entityID()) + "&RelayState=%2F%09%2Fevil.example%2F", ""} {
			code, page = browse(t, c, e.hub.URL+idp.PathIdPInitiated+bad)
			if code < 400 || strings.Contains(page, "SAMLResponse") {
				t.Errorf("%s: %d\n%s", bad, code, page)
			}
		}
	})

	t.Run("single logout", func(t *testing.T) {
		sp := e.newSP(t, true, func(o *samlsp.Options) { o.SignRequest = true })
		c := e.browser(t)
		e.spLogin(t, c, sp, "alice", "pw-alice")
		hubURL, _ := url.Parse(e.hub.URL)
		secret := cookieValue(c, hubURL, idp.CookieName(e.hub.URL, idp.SessionCookie))
		if _, err := e.st.IdPSession(context.Background(), hashFor(secret)); err != nil {
			t.Fatal(err)
		}
		parts, _ := e.st.IdPSessionParticipants(context.Background(), hashFor(secret))
		if len(parts) != 1 || parts[0].ServiceProvider != sp.entityID() {
			t.Fatalf("participants: %+v", parts)
		}
		users, _ := e.st.UserByUserName(context.Background(), "alice")
		lo, err := sp.mw.ServiceProvider.MakeRedirectLogoutRequest(users.ID, "", saml.WithSessionIndex(parts[0].SessionIndex))
		if err != nil {
			t.Fatal(err)
		}
		noFollow := *c
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := noFollow.Get(lo.String())
		code, body := readBody(t, resp, err)
		loc := resp.Header.Get("Location")
		action, fields := formFields(body)
		switch {
		case code == http.StatusFound && strings.Contains(loc, "SAMLResponse=") && strings.HasPrefix(loc, sp.srv.URL):
		case code == http.StatusOK && fields.Get("SAMLResponse") != "" && strings.HasPrefix(action, sp.srv.URL):
		default:
			t.Fatalf("logout: %d %q\n%s\n%s", code, loc, body, e.logs.String())
		}
		if _, err := e.st.IdPSession(context.Background(), hashFor(secret)); err == nil {
			t.Fatal("hub session survived single logout")
		}
		// The same LogoutRequest again, after a new login: refused, and the
		// new session lives on.
		c2 := e.loggedIn(t, "alice", "pw-alice")
		secret = cookieValue(c2, hubURL, idp.CookieName(e.hub.URL, idp.SessionCookie))
		resp, err = noFollow.Get(lo.String())
		if code, body := readBody(t, resp, err); code != http.StatusBadRequest || !strings.Contains(body, "already used") {
			t.Fatalf("replayed LogoutRequest: %d\n%s", code, body)
		}
		if _, err := e.st.IdPSession(context.Background(), hashFor(secret)); err != nil {
			t.Fatalf("a replayed LogoutRequest ended the new session: %v", err)
		}
	})

	t.Run("hub logout", func(t *testing.T) {
		c := e.loggedIn(t, "alice", "pw-alice")
		hubURL, _ := url.Parse(e.hub.URL)
		secret := cookieValue(c, hubURL, idp.CookieName(e.hub.URL, idp.SessionCookie))
		code, page := browse(t, c, e.hub.URL+idp.PathLogout)
		if code != 200 || !strings.Contains(page, "logout-submit") {
			t.Fatal(code, page)
		}
		_, v := formFields(page)
		code, page = submit(t, c, e.hub.URL+idp.PathLogout, v)
		if code != 200 {
			t.Fatal(code, page)
		}
		if _, err := e.st.IdPSession(context.Background(), hashFor(secret)); err == nil {
			t.Fatal("hub session survived logout")
		}
		_, page = browse(t, c, e.hub.URL+idp.PathLogin)
		if !strings.Contains(page, `name="password"`) {
			t.Fatalf("still logged in:\n%s", page)
		}
	})
}

var _ = time.Second
