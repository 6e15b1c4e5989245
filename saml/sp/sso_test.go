package sp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/connectsso/connect/bridge/state/memory"
	"github.com/connectsso/connect/internal/testenv"
)

// backends runs a test on the in-process state and on real Redis.
func backends(t *testing.T, run func(t *testing.T, useRedis bool)) {
	t.Run("memory", func(t *testing.T) { run(t, false) })
	t.Run("redis", func(t *testing.T) {
		testenv.RedisAddr(t)
		run(t, true)
	})
}

func TestSSOLogin(t *testing.T) {
	backends(t, func(t *testing.T, useRedis bool) {
		testSSOLogin(t, fixtureOpts{redis: useRedis})
	})
	// Signed AuthnRequests and encrypted assertions (both optional).
	t.Run("signed+encrypted", func(t *testing.T) { testSSOLogin(t, fixtureOpts{sign: true, encrypt: true}) })
}

func testSSOLogin(t *testing.T, o fixtureOpts) {
	{
		f := newFixture(t, o)
		b := f.browser()
		f.hubLogin(b, "alice", "alice-pw")

		resp, body := b.get(f.srv.URL+"/login?rd=/app/page", false)
		if resp.StatusCode != 200 || !strings.Contains(body, "Log in using your account on: Test Hub") || !strings.Contains(body, `id="local-login"`) {
			t.Fatalf("login page: %d %s", resp.StatusCode, body)
		}
		if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("auth before login = %d, want 401", got)
		}
		// The cookie binding a pending login to this browser: sent with the
		// hub's cross-site POST, unplantable by a sibling subdomain.
		start, _ := f.browser().get(f.srv.URL+PathSAMLLogin+"?hub=hub1", false)
		var reqCookie *http.Cookie
		for _, c := range start.Cookies() {
			if strings.HasPrefix(c.Name, "__Host-connect_req_") {
				reqCookie = c
			}
		}
		if reqCookie == nil || !reqCookie.Secure || !reqCookie.HttpOnly || reqCookie.SameSite != http.SameSiteNoneMode || reqCookie.Path != "/" || !validToken(reqCookie.Value) {
			t.Fatalf("request cookie %+v", reqCookie)
		}

		resp = f.sso(b, "/app/page?x=1")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/page?x=1" {
			t.Fatalf("acs: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if c := b.cookie(f.srv.URL, "__Host-connect_session"); !validToken(c) {
			t.Fatalf("session cookie %q", c)
		}
		for _, sc := range resp.Cookies() {
			if sc.Name == "__Host-connect_session" && (!sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/") {
				t.Errorf("session cookie flags: %+v", sc)
			}
		}
		a := f.auth(b)
		if a.StatusCode != http.StatusAccepted {
			t.Fatalf("auth = %d, want 202", a.StatusCode)
		}
		want := map[string]string{HeaderUser: "tcalice", HeaderEmail: "alice@example.com", HeaderGroups: "staff,course-101", HeaderName: "Alice Liddell"}
		for k, v := range want {
			if got := a.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if got := f.metric(0, "connect_bridge_sso_logins_total", "result", "success"); got != 1 {
			t.Errorf("logins{success} = %v", got)
		}
		if got := f.metric(0, "connect_bridge_forward_auth_total", "code", "202"); got != 1 {
			t.Errorf("forward_auth{202} = %v", got)
		}
		if got := f.metric(0, "connect_bridge_forward_auth_duration_seconds"); got != 2 {
			t.Errorf("forward_auth latency samples = %v, want 2", got)
		}
		// The session is stored hashed: the cookie value is nowhere in the store.
		tok := b.cookie(f.srv.URL, "__Host-connect_session")
		if _, err := f.store.GetSession(context.Background(), tok); err == nil {
			t.Error("session found under the raw cookie value")
		}
		if _, err := f.store.GetSession(context.Background(), storeID(kindSession, tokenHash(tok))); err != nil {
			t.Errorf("session not stored under its hash: %v", err)
		}
	}
}

func TestAutoSSO(t *testing.T) {
	f := newFixture(t, fixtureOpts{autoSSO: true})
	b := f.browser()
	resp, _ := b.get(f.srv.URL+"/login?rd=/x", false)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), f.hub.srv.URL+"/sso?") {
		t.Fatalf("auto-sso: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The whole round trip lands on the page asked for.
	f.hubLogin(b, "alice", "alice-pw")
	resp, body := b.get(f.srv.URL+"/login?rd=/x", true)
	if !strings.Contains(body, "SAMLResponse") {
		t.Fatalf("auto-sso did not reach the hub: %d %s", resp.StatusCode, body)
	}
	action, fields := form(t, body)
	resp, _ = b.post(action, fields, false)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/x" {
		t.Fatalf("acs after auto-sso: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// /saml/login without ?hub= starts at the only hub.
	if resp, _ := f.browser().get(f.srv.URL+PathSAMLLogin+"?rd=/y", false); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), f.hub.srv.URL+"/sso?") {
		t.Fatalf("/saml/login without hub: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, tc := range []struct {
		name string
		path string
		hubs int
		auto bool
	}{
		{"local escape hatch", "/login?local=1", 1, true},
		{"after logout", "/login?logged_out=1", 1, true},
		{"two hubs", "/login", 2, true},
		{"setting off", "/login", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.autoSSO = tc.auto
			f.hubs.mu.Lock()
			f.hubs.hubs = f.hubs.hubs[:1]
			if tc.hubs == 2 {
				f.hubs.hubs = append(f.hubs.hubs, Hub{ID: "hub2", Name: "Second Hub", Metadata: f.hub.metadata()})
			}
			f.hubs.mu.Unlock()
			resp, body := f.browser().get(f.srv.URL+tc.path, false)
			if resp.StatusCode != 200 || !strings.Contains(body, "Log in using your account on: Test Hub") {
				t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, body)
			}
			if tc.hubs == 2 && !strings.Contains(body, "Log in using your account on: Second Hub") {
				t.Fatalf("second hub missing: %s", body)
			}
		})
	}
}

// TestReplayAcrossReplicas: two replicas share one state; a session made on
// one is valid on the other, and a response accepted by one is refused by the
// other, even when the pending request is put back (the request ID is spent
// in the shared replay cache).
func TestReplayAcrossReplicas(t *testing.T) {
	backends(t, func(t *testing.T, useRedis bool) {
		f := newFixture(t, fixtureOpts{replicas: 2, redis: useRedis})
		b := f.browser()
		f.hubLogin(b, "alice", "alice-pw")
		action, fields := f.startSSO(b, "/a")
		ctx := context.Background()
		pendingID := storeID(kindLogin, tokenHash(fields.Get("RelayState")))
		saved, err := f.store.GetSession(ctx, pendingID)
		if err != nil {
			t.Fatal(err)
		}
		reqCookie := b.cookie(f.srv.URL+PathACS, f.replicas[0].requestCookieName(fields.Get("RelayState")))

		resp, _ := b.post(action, fields, false)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first post: %d", resp.StatusCode)
		}
		b.replica = 1
		if got := f.auth(b).StatusCode; got != http.StatusAccepted {
			t.Fatalf("session made on replica 0, auth on replica 1 = %d", got)
		}

		// An attacker replays the captured post (with the request cookie) on
		// the other replica.
		atk := f.browser()
		atk.replica = 1
		atk.setCookie(f.srv.URL+PathACS, f.replicas[0].requestCookieName(fields.Get("RelayState")), reqCookie)
		resp, _ = atk.post(action, fields, false)
		if resp.StatusCode != http.StatusBadRequest || atk.cookie(f.srv.URL, "__Host-connect_session") != "" {
			t.Fatalf("replay: %d, session %q", resp.StatusCode, atk.cookie(f.srv.URL, "__Host-connect_session"))
		}
		// Even with the pending request put back (two replicas racing on
		// the same answer), the spent request ID refuses it.
		if err := f.store.PutSession(ctx, saved, time.Minute); err != nil {
			t.Fatal(err)
		}
		resp, _ = atk.post(action, fields, false)
		if resp.StatusCode != http.StatusBadRequest || atk.cookie(f.srv.URL, "__Host-connect_session") != "" {
			t.Fatalf("replay with the pending request restored: %d", resp.StatusCode)
		}
		if got := f.metric(1, "connect_bridge_sso_logins_total", "result", "replayed"); got != 1 {
			t.Errorf("replica 1 logins{replayed} = %v", got)
		}
		if got := f.metric(1, "connect_bridge_sso_logins_total", "result", "expired"); got != 1 {
			t.Errorf("replica 1 logins{expired} = %v", got)
		}
	})
}

// TestAssertionReplayCache: the assertion ID is recorded by crewjam through
// the shared cache, so an assertion is accepted once even by a second SP.
func TestAssertionReplayCache(t *testing.T) {
	st := newState(t, false)
	ad := replayAdapter{ctx: context.Background(), rc: stateSessions{st}, hub: "hub1"}
	exp := time.Now().Add(time.Minute)
	if err := ad.Consume("_abc", exp); err != nil {
		t.Fatalf("first consume: %v", err)
	}
	if err := ad.Consume("_abc", exp); err != saml.ErrAssertionReplayed {
		t.Fatalf("second consume = %v, want ErrAssertionReplayed", err)
	}
	other := replayAdapter{ctx: context.Background(), rc: stateSessions{st}, hub: "hub2"}
	if err := other.Consume("_abc", exp); err != nil {
		t.Fatalf("same id from another hub: %v", err)
	}
}

// TestResponseRefused: every kind of bad Response is refused, and no session
// starts.
func TestResponseRefused(t *testing.T) {
	// A tight skew shows our own time checks, stricter than crewjam's.
	f := newFixture(t, fixtureOpts{clockSkew: 30 * time.Second})
	stripSignatures := func(el *etree.Element) {
		for _, c := range el.ChildElements() {
			if c.Tag == "Signature" {
				el.RemoveChild(c)
			}
		}
	}
	assertionEl := func(resp *etree.Element) *etree.Element {
		for _, c := range resp.ChildElements() {
			if c.Tag == "Assertion" {
				return c
			}
		}
		return etree.NewElement("missing-assertion") // fails the response, not the test goroutine
	}
	for _, tc := range []struct {
		name   string
		mutate func(req *saml.IdpAuthnRequest)
		write  func(w http.ResponseWriter, req *saml.IdpAuthnRequest) error
		sha1   bool
		status int
		result string
	}{
		{name: "wrong audience", mutate: func(req *saml.IdpAuthnRequest) {
			req.Assertion.Conditions.AudienceRestrictions = []saml.AudienceRestriction{{Audience: saml.Audience{Value: "https://other.example/saml/metadata"}}}
		}},
		{name: "expired", mutate: func(req *saml.IdpAuthnRequest) {
			old := time.Now().Add(-time.Hour)
			req.Now = old
			req.Assertion.IssueInstant = old
			req.Assertion.Conditions.NotBefore = old.Add(-time.Minute)
			req.Assertion.Conditions.NotOnOrAfter = old.Add(5 * time.Minute)
			req.Assertion.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = old.Add(5 * time.Minute)
		}},
		{name: "expired beyond our skew only", mutate: func(req *saml.IdpAuthnRequest) {
			// crewjam allows 180 s past NotOnOrAfter; we allow ClockSkew (30 s here).
			end := time.Now().Add(-60 * time.Second)
			req.Assertion.Conditions.NotOnOrAfter = end
		}},
		{name: "issued before the request", mutate: func(req *saml.IdpAuthnRequest) {
			// Within crewjam's 90 s issue delay, before our request minus skew.
			req.Assertion.IssueInstant = time.Now().Add(-60 * time.Second)
		}},
		{name: "not yet valid", mutate: func(req *saml.IdpAuthnRequest) {
			req.Assertion.Conditions.NotBefore = time.Now().Add(10 * time.Minute)
		}},
		{name: "wrong recipient", mutate: func(req *saml.IdpAuthnRequest) {
			req.Assertion.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = "https://other.example/saml/acs"
		}},
		{name: "wrong InResponseTo", mutate: func(req *saml.IdpAuthnRequest) {
			req.Request.ID = "id-someotherrequest"
			req.Assertion.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo = "id-someotherrequest"
		}},
		{name: "transient NameID", mutate: func(req *saml.IdpAuthnRequest) {
			req.Assertion.Subject.NameID.Format = string(saml.TransientNameIDFormat)
		}},
		{name: "SHA-1 signature", sha1: true},
		{name: "unsigned", write: func(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
			plainAssertions(req)
			if err := req.MakeResponse(); err != nil {
				return err
			}
			stripSignatures(req.ResponseEl)
			stripSignatures(assertionEl(req.ResponseEl))
			return req.WriteResponse(w)
		}},
		{name: "tampered after signing", write: func(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
			plainAssertions(req)
			if err := req.MakeResponse(); err != nil {
				return err
			}
			stripSignatures(req.ResponseEl) // only the assertion's signature is left to check
			nid := assertionEl(req.ResponseEl).FindElement(".//NameID")
			nid.SetText("hubid-admin")
			return req.WriteResponse(w)
		}},
		{name: "two assertions (signature wrapping)", write: func(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
			plainAssertions(req)
			if err := req.MakeResponse(); err != nil {
				return err
			}
			evil := assertionEl(req.ResponseEl).Copy()
			evil.CreateAttr("ID", "_evil")
			evil.FindElement(".//NameID").SetText("hubid-admin")
			req.ResponseEl.InsertChildAt(0, evil)
			return req.WriteResponse(w)
		}},
		{name: "hub declines (out of scope)", status: http.StatusForbidden, result: resultOutOfScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.hub.set(func(th *testHub) {
				th.mutate, th.write, th.refuse = tc.mutate, tc.write, tc.status == http.StatusForbidden
				th.idp.IDP.SignatureMethod = ""
				if tc.sha1 {
					th.idp.IDP.SignatureMethod = dsig.RSASHA1SignatureMethod
				}
			})
			defer f.hub.set(func(th *testHub) {
				th.mutate, th.write, th.refuse = nil, nil, false
				th.idp.IDP.SignatureMethod = ""
			})
			status, result := tc.status, tc.result
			if status == 0 {
				status, result = http.StatusBadRequest, resultInvalid
			}
			before := f.metric(0, "connect_bridge_sso_logins_total", "result", result)
			b := f.browser()
			f.hubLogin(b, "alice", "alice-pw")
			action, fields := f.startSSO(b, "/a")
			resp, body := b.post(action, fields, false)
			if resp.StatusCode != status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
			}
			if c := b.cookie(f.srv.URL, "__Host-connect_session"); c != "" {
				t.Fatal("a session cookie was set")
			}
			if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
				t.Fatalf("auth = %d", got)
			}
			if got := f.metric(0, "connect_bridge_sso_logins_total", "result", result); got != before+1 {
				t.Errorf("logins{%s} = %v, want %v", result, got, before+1)
			}
			if tc.result == resultOutOfScope && !strings.Contains(body, "does not give access to Example Site") {
				t.Errorf("no clear page: %s", body)
			}
		})
	}
	// After all that, a good response still works.
	b := f.browser()
	f.hubLogin(b, "alice", "alice-pw")
	if resp := f.sso(b, "/ok"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("good login after refusals: %d", resp.StatusCode)
	}
}

func TestAccountRefusals(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, tc := range []struct {
		name, page, result string
		set                func(a *testAccounts)
	}{
		{"out of scope", "does not give access to Example Site", resultOutOfScope, func(a *testAccounts) { a.outOfScope[aliceSubject] = true }},
		{"not allowed", "cannot log in to Example Site", resultDenied, func(a *testAccounts) { a.blocked["L-"+aliceSubject] = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.accounts.set(func(a *testAccounts) { a.outOfScope, a.blocked = map[string]bool{}, map[string]bool{} })
			f.accounts.set(tc.set)
			b := f.browser()
			f.hubLogin(b, "alice", "alice-pw")
			action, fields := f.startSSO(b, "/a")
			resp, body := b.post(action, fields, false)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, tc.page) || !strings.Contains(body, "Test Hub") {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
				t.Fatalf("auth = %d", got)
			}
			if got := f.metric(0, "connect_bridge_sso_logins_total", "result", tc.result); got != 1 {
				t.Errorf("logins{%s} = %v", tc.result, got)
			}
		})
	}
}

// TestUnsolicitedAndCrossBrowser: IdP-initiated (no RelayState) and a
// response posted by a browser that did not start the login are refused;
// the right browser can still finish.
func TestUnsolicitedAndCrossBrowser(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	b := f.browser()
	f.hubLogin(b, "alice", "alice-pw")
	action, fields := f.startSSO(b, "/mine")

	unsolicited := url.Values{"SAMLResponse": fields["SAMLResponse"]}
	resp, _ := f.browser().post(action, unsolicited, false)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unsolicited: %d", resp.StatusCode)
	}
	victim := f.browser()
	resp, body := victim.post(action, fields, false)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "another browser") {
		t.Fatalf("cross-browser post: %d %s", resp.StatusCode, body)
	}
	if victim.cookie(f.srv.URL, "__Host-connect_session") != "" {
		t.Fatal("victim got a session")
	}
	resp, _ = b.post(action, fields, false)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/mine" {
		t.Fatalf("own browser: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := f.metric(0, "connect_bridge_sso_logins_total", "result", "csrf"); got != 1 {
		t.Errorf("logins{csrf} = %v", got)
	}
}

func TestOpenRedirectRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, rd := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "/%0d%0aSet-Cookie:x"} {
		t.Run(rd, func(t *testing.T) {
			b := f.browser()
			f.hubLogin(b, "alice", "alice-pw")
			resp := f.sso(b, rd)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("acs %d", resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); loc != "/" && loc != rd {
				t.Fatalf("Location %q", loc)
			} else if loc == rd && !strings.HasPrefix(rd, "/%") {
				t.Fatalf("Location %q: left the site", loc)
			}
			// The same through the local form.
			lb := f.browser()
			_, page := lb.get(f.srv.URL+"/login", false)
			_, v := form(t, page)
			v.Set("username", "bob")
			v.Set("password", "bob-pw")
			v.Set("rd", rd)
			resp, _ = lb.post(f.srv.URL+"/login", v, false)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || (loc != "/" && !strings.HasPrefix(rd, "/%")) {
				t.Fatalf("local: %d %q", resp.StatusCode, loc)
			}
		})
	}
}

func TestLocalLoginCSRF(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	b := f.browser()
	_, page := b.get(f.srv.URL+"/login?rd=/home", false)
	action, v := form(t, page)
	if action != "/login" || !validToken(v.Get("csrf")) || v.Get("rd") != "/home" {
		t.Fatalf("form %q %v", action, v)
	}
	good := func() url.Values {
		g := url.Values{}
		for k, vs := range v {
			g[k] = vs
		}
		g.Set("username", "bob")
		g.Set("password", "bob-pw")
		return g
	}
	for _, tc := range []struct {
		name   string
		edit   func(v url.Values)
		origin string
	}{
		{"no token", func(v url.Values) { v.Del("csrf") }, ""},
		{"wrong token", func(v url.Values) { v.Set("csrf", newToken()) }, ""},
		{"cross-origin post", func(url.Values) {}, "https://evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := good()
			tc.edit(form)
			req, _ := http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
				req.Header.Set("Sec-Fetch-Site", "cross-site")
			}
			resp, _ := b.do(req, false)
			if resp.StatusCode != http.StatusForbidden || b.cookie(f.srv.URL, "__Host-connect_session") != "" {
				t.Fatalf("%d", resp.StatusCode)
			}
		})
	}
	for _, cred := range [][2]string{{"bob", "wrong"}, {"nobody", "bob-pw"}} {
		form := good()
		form.Set("username", cred[0])
		form.Set("password", cred[1])
		resp, body := b.post(f.srv.URL+"/login", form, false)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Invalid username or password.") {
			t.Fatalf("%v: %d %s", cred, resp.StatusCode, body)
		}
	}
	resp, _ := b.post(f.srv.URL+"/login", good(), false)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/home" {
		t.Fatalf("good login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	a := f.auth(b)
	if a.StatusCode != http.StatusAccepted || a.Header.Get(HeaderUser) != "bob" || a.Header.Get(HeaderGroups) != "editors" {
		t.Fatalf("auth after local login: %d %v", a.StatusCode, a.Header)
	}
	if got := f.metric(0, "connect_bridge_sso_logins_total", "result", "csrf"); got != 3 {
		t.Errorf("logins{csrf} = %v", got)
	}
	if got := f.metric(0, "connect_bridge_sso_logins_total", "result", "local_failure"); got != 2 {
		t.Errorf("logins{local_failure} = %v", got)
	}
}

// TestSessionRotation: a login always makes a new session id and ends the
// one the browser held.
func TestSessionRotation(t *testing.T) {
	f := newFixture(t, fixtureOpts{sessionCache: -1})
	b := f.browser()
	_, page := b.get(f.srv.URL+"/login", false)
	_, v := form(t, page)
	v.Set("username", "bob")
	v.Set("password", "bob-pw")
	if resp, _ := b.post(f.srv.URL+"/login", v, false); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("local login %d", resp.StatusCode)
	}
	first := b.cookie(f.srv.URL, "__Host-connect_session")
	f.hubLogin(b, "alice", "alice-pw")
	if resp := f.sso(b, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sso %d", resp.StatusCode)
	}
	second := b.cookie(f.srv.URL, "__Host-connect_session")
	if first == "" || second == "" || first == second {
		t.Fatalf("cookies %q then %q", first, second)
	}
	if a := f.auth(b); a.StatusCode != http.StatusAccepted || a.Header.Get(HeaderUser) != "tcalice" {
		t.Fatalf("new session: %d %q", a.StatusCode, a.Header.Get(HeaderUser))
	}
	old := f.browser()
	old.setCookie(f.srv.URL, "__Host-connect_session", first)
	if got := f.auth(old).StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("old session id still works: %d", got)
	}
	// A session fixed by an attacker before login is not the one after it.
	fixed := newToken()
	fb := f.browser()
	fb.setCookie(f.srv.URL, "__Host-connect_session", fixed)
	f.hubLogin(fb, "alice", "alice-pw")
	f.sso(fb, "/")
	if got := fb.cookie(f.srv.URL, "__Host-connect_session"); got == fixed || got == "" {
		t.Fatalf("session id after login = %q (fixed %q)", got, fixed)
	}
}

func TestForwardAuth(t *testing.T) {
	f := newFixture(t, fixtureOpts{allowedCache: -1, sessionCache: -1})
	anon := f.browser()
	req, _ := http.NewRequest("GET", f.srv.URL+PathAuth, nil)
	req.Header.Set("X-Original-URI", "/app/page?a=1&b=2")
	resp, _ := anon.do(req, false)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get(HeaderLogin) != "/login?rd=%2Fapp%2Fpage%3Fa%3D1%26b%3D2" {
		t.Fatalf("anonymous: %d %q", resp.StatusCode, resp.Header.Get(HeaderLogin))
	}
	req, _ = http.NewRequest("GET", f.srv.URL+PathAuth, nil)
	req.Header.Set("X-Original-URI", "//evil.example/")
	if resp, _ := anon.do(req, false); resp.Header.Get(HeaderLogin) != "/login" {
		t.Fatalf("login hint for an off-site uri: %q", resp.Header.Get(HeaderLogin))
	}
	req, _ = http.NewRequest("GET", f.srv.URL+PathAuth+"?redirect=1", nil)
	req.Header.Set("X-Forwarded-Uri", "/app?a=1")
	if resp, _ := anon.do(req, false); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login?rd=%2Fapp%3Fa%3D1" {
		t.Fatalf("?redirect=1: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	junk := f.browser()
	junk.setCookie(f.srv.URL, "__Host-connect_session", "not-a-token")
	if got := f.auth(junk).StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("junk cookie: %d", got)
	}
	junk.setCookie(f.srv.URL, "__Host-connect_session", newToken())
	if got := f.auth(junk).StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", got)
	}

	b := f.browser()
	f.hubLogin(b, "alice", "alice-pw")
	f.sso(b, "/")
	if got := f.auth(b).StatusCode; got != http.StatusAccepted {
		t.Fatalf("with session: %d", got)
	}
	f.accounts.set(func(a *testAccounts) { a.groups["L-"+aliceSubject] = []string{"staff", "a,b"} })
	if got := f.auth(b).Header.Get(HeaderGroups); got != "staff,a%2Cb" {
		t.Fatalf("groups after change: %q", got)
	}
	f.accounts.set(func(a *testAccounts) { a.blocked["L-"+aliceSubject] = true })
	if got := f.auth(b).StatusCode; got != http.StatusForbidden {
		t.Fatalf("blocked user: %d", got)
	}
	f.accounts.set(func(a *testAccounts) { a.blocked = map[string]bool{} })
	if got := f.auth(b).StatusCode; got != http.StatusAccepted {
		t.Fatalf("unblocked: %d", got)
	}
	for code, n := range map[string]float64{"202": 3, "401": 4, "302": 1, "403": 1} {
		if got := f.metric(0, "connect_bridge_forward_auth_total", "code", code); got != n {
			t.Errorf("forward_auth{%s} = %v, want %v", code, got, n)
		}
	}
}

// TestForwardAuthCache: answers are cached briefly, and a logout on this
// replica takes effect at once.
func TestForwardAuthCache(t *testing.T) {
	f := newFixture(t, fixtureOpts{sessionCache: time.Hour, allowedCache: time.Hour})
	b := f.browser()
	f.hubLogin(b, "alice", "alice-pw")
	f.sso(b, "/")
	for i := 0; i < 5; i++ {
		if got := f.auth(b).StatusCode; got != http.StatusAccepted {
			t.Fatalf("auth %d", got)
		}
	}
	// The login's own answer is the first Allowed answer.
	if f.accounts.allowed != 0 {
		t.Errorf("Allowed called %d times, want 0 (cached from the login)", f.accounts.allowed)
	}
	tok := b.cookie(f.srv.URL, "__Host-connect_session")
	req, _ := http.NewRequest("GET", f.srv.URL+PathLogout, nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	b.do(req, true)
	again := f.browser()
	again.setCookie(f.srv.URL, "__Host-connect_session", tok)
	if got := f.auth(again).StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("auth after logout with the old cookie: %d", got)
	}
}

func TestSingleLogoutFromBridge(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	b := f.browser()
	f.hubLogin(b, "alice", "alice-pw")
	f.sso(b, "/")
	if f.hub.sessions() != 1 {
		t.Fatalf("hub sessions %d", f.hub.sessions())
	}
	req, _ := http.NewRequest("GET", f.srv.URL+PathLogout, nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, body := b.do(req, true)
	if resp.StatusCode != 200 || resp.Request.URL.Path != PathLogin || !strings.Contains(body, "You have been logged out.") {
		t.Fatalf("after logout: %d %s %s", resp.StatusCode, resp.Request.URL, body)
	}
	if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("auth after logout: %d", got)
	}
	if n := f.hub.sessions(); n != 0 {
		t.Fatalf("hub sessions after single logout: %d", n)
	}
	if got := f.metric(0, "connect_bridge_sso_logouts_total", "kind", "single"); got != 1 {
		t.Errorf("logouts{single} = %v", got)
	}
}

func TestSingleLogoutFromHub(t *testing.T) {
	backends(t, func(t *testing.T, useRedis bool) {
		f := newFixture(t, fixtureOpts{replicas: 2, redis: useRedis, sessionCache: 300 * time.Millisecond})
		b := f.browser()
		f.hubLogin(b, "alice", "alice-pw")
		f.sso(b, "/")
		tok := b.cookie(f.srv.URL, "__Host-connect_session")
		other := f.browser() // the same session seen through replica 1
		other.replica = 1
		other.setCookie(f.srv.URL, "__Host-connect_session", tok)
		if got := f.auth(other).StatusCode; got != http.StatusAccepted {
			t.Fatalf("replica 1 before logout: %d", got)
		}
		// A second session of the same user (another browser).
		b2 := f.browser()
		f.hubLogin(b2, "alice", "alice-pw")
		f.sso(b2, "/")

		resp, body := b.get(f.hub.srv.URL+"/logout", true)
		if resp.StatusCode != 200 {
			t.Fatalf("hub logout: %d %s", resp.StatusCode, body)
		}
		if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("replica 0 after hub logout: %d", got)
		}
		if got := f.auth(b2).StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("the user's other session after hub logout: %d", got)
		}
		time.Sleep(350 * time.Millisecond) // replica 1's cache lifetime
		if got := f.auth(other).StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("replica 1 after hub logout: %d", got)
		}
		if got := f.metric(0, "connect_bridge_sso_logouts_total", "kind", "from_hub"); got != 1 {
			t.Errorf("logouts{from_hub} = %v", got)
		}
	})
}

func TestLogoutCSRF(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	b := f.browser()
	f.hubLogin(b, "alice", "alice-pw")
	f.sso(b, "/")
	// A link from another site (or a client that says nothing) gets a
	// confirmation page, not a logout.
	req, _ := http.NewRequest("GET", f.srv.URL+PathLogout, nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, page := b.do(req, false)
	if resp.StatusCode != 200 || !strings.Contains(page, "Log out of Example Site?") {
		t.Fatalf("cross-site GET: %d %s", resp.StatusCode, page)
	}
	if got := f.auth(b).StatusCode; got != http.StatusAccepted {
		t.Fatalf("logged out by a cross-site GET: %d", got)
	}
	_, v := form(t, page)
	bad := url.Values{"rd": {"/"}}
	if resp, _ := b.post(f.srv.URL+PathLogout, bad, false); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without token: %d", resp.StatusCode)
	}
	if got := f.auth(b).StatusCode; got != http.StatusAccepted {
		t.Fatalf("logged out without a token: %d", got)
	}
	resp, _ = b.post(f.srv.URL+PathLogout, v, false)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), f.hub.srv.URL+"/slo?") {
		t.Fatalf("POST with token: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("auth after logout: %d", got)
	}
}

func TestMetadata(t *testing.T) {
	for _, o := range []fixtureOpts{{}, {sign: true, encrypt: true}} {
		t.Run(fmt.Sprintf("sign=%v,encrypt=%v", o.sign, o.encrypt), func(t *testing.T) { testMetadata(t, o) })
	}
}

func testMetadata(t *testing.T, o fixtureOpts) {
	f := newFixture(t, o)
	keyPEM, certPEM := testKeyPair(t, 2)
	f.hubs.mu.Lock()
	f.hubs.hubs = append(f.hubs.hubs, Hub{ID: "hub2", Name: "Hub Two", Metadata: f.hub.metadata(), KeyPEM: keyPEM, CertPEM: certPEM})
	f.hubs.mu.Unlock()
	for _, path := range []string{PathMetadata, PathConnectMetadata} {
		resp, body := f.browser().get(f.srv.URL+path, false)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		ed, err := parseSPMetadataForTest([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if ed.EntityID != f.srv.URL+PathMetadata {
			t.Errorf("entityID %q", ed.EntityID)
		}
		sd := ed.SPSSODescriptors[0]
		if len(sd.AssertionConsumerServices) != 1 || sd.AssertionConsumerServices[0].Location != f.srv.URL+PathACS || sd.AssertionConsumerServices[0].Binding != saml.HTTPPostBinding {
			t.Errorf("acs %+v", sd.AssertionConsumerServices)
		}
		if len(sd.SingleLogoutServices) == 0 || sd.SingleLogoutServices[0].Location != f.srv.URL+PathSLO {
			t.Errorf("slo %+v", sd.SingleLogoutServices)
		}
		if sd.AuthnRequestsSigned == nil || *sd.AuthnRequestsSigned != o.sign || sd.WantAssertionsSigned == nil || !*sd.WantAssertionsSigned {
			t.Errorf("signing flags %v %v", *sd.AuthnRequestsSigned, *sd.WantAssertionsSigned)
		}
		certs := map[string]bool{}
		encryption := 0
		for _, kd := range sd.KeyDescriptors {
			if kd.Use == "encryption" {
				encryption++
			}
			if kd.Use == "signing" {
				for _, c := range kd.KeyInfo.X509Data.X509Certificates {
					certs[c.Data] = true
				}
			}
		}
		if len(certs) != 2 || !certs[base64.StdEncoding.EncodeToString(pemCert(t, certPEM).Raw)] {
			t.Errorf("signing certificates %d, want 2 (the bridge's and hub2's own)", len(certs))
		}
		if (encryption > 0) != o.encrypt {
			t.Errorf("%d encryption keys with EncryptAssertions=%v", encryption, o.encrypt)
		}
	}
}

func parseSPMetadataForTest(data []byte) (*saml.EntityDescriptor, error) {
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(data, &ed); err != nil {
		return nil, err
	}
	if len(ed.SPSSODescriptors) != 1 {
		return nil, fmt.Errorf("%d SPSSODescriptors", len(ed.SPSSODescriptors))
	}
	return &ed, nil
}

// TestLocalLoginThrottle: after the limit of failures an account's local
// logins are refused (even with the right password) until the window ends;
// other accounts are not affected; a success resets the count.
func TestLocalLoginThrottle(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := f.replicas[0]
	now := time.Now()
	s.cfg.Clock = func() time.Time { return now }
	s.accountFails = newThrottle(3, time.Minute)
	b := f.browser()
	_, page := b.get(f.srv.URL+"/login", false)
	_, v := form(t, page)
	try := func(user, pw string) int {
		t.Helper()
		v.Set("username", user)
		v.Set("password", pw)
		resp, _ := b.post(f.srv.URL+"/login", v, false)
		return resp.StatusCode
	}
	if got := try("bob", "wrong"); got != http.StatusUnauthorized {
		t.Fatalf("first failure: %d", got)
	}
	if got := try("bob", "bob-pw"); got != http.StatusSeeOther {
		t.Fatalf("success: %d", got)
	}
	for i := 0; i < 3; i++ {
		if got := try("BOB", "wrong"); got != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, got)
		}
	}
	if got := try("bob", "bob-pw"); got != http.StatusTooManyRequests {
		t.Fatalf("right password while blocked: %d", got)
	}
	if got := try("nobody", "x"); got != http.StatusUnauthorized {
		t.Fatalf("another account: %d", got)
	}
	now = now.Add(61 * time.Second)
	if got := try("bob", "bob-pw"); got != http.StatusSeeOther {
		t.Fatalf("after the window: %d", got)
	}
	if got := f.metric(0, "connect_bridge_sso_logins_total", "result", "throttled"); got != 1 {
		t.Errorf("logins{throttled} = %v", got)
	}
}

// TestForwardAuthGroups: /connect/auth?group=… admits members of any of them.
func TestForwardAuthGroups(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	b := f.browser()
	f.hubLogin(b, "alice", "alice-pw")
	f.sso(b, "/")
	for q, want := range map[string]int{
		"":                               http.StatusAccepted,
		"?group=staff":                   http.StatusAccepted,
		"?group=admins&group=course-101": http.StatusAccepted,
		"?group=admins":                  http.StatusForbidden,
		"?group=Staff":                   http.StatusForbidden,
	} {
		if resp, _ := b.get(f.srv.URL+PathAuth+q, false); resp.StatusCode != want {
			t.Errorf("%q: %d, want %d", q, resp.StatusCode, want)
		}
	}
}

// TestConcurrentUse: logins, checks, logouts and hub list changes at once
// (run with -race).
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, fixtureOpts{replicas: 2, sessionCache: 50 * time.Millisecond, allowedCache: 50 * time.Millisecond})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the operator renames the hub now and then
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			f.hubs.mu.Lock()
			f.hubs.hubs[0].Name = fmt.Sprintf("Test Hub %d", i%3)
			f.hubs.mu.Unlock()
		}
	}()
	errs := make(chan error, 8)
	var users sync.WaitGroup
	for g := 0; g < 4; g++ {
		users.Add(1)
		go func(g int) {
			defer users.Done()
			b := f.browser()
			b.replica = g % 2
			f.hubLogin(b, "alice", "alice-pw")
			for round := 0; round < 3; round++ {
				if resp := f.sso(b, "/"); resp.StatusCode != http.StatusSeeOther {
					errs <- fmt.Errorf("user %d: acs %d", g, resp.StatusCode)
					return
				}
				for i := 0; i < 20; i++ {
					b.replica = i % 2
					if got := f.auth(b).StatusCode; got != http.StatusAccepted {
						errs <- fmt.Errorf("user %d: auth %d", g, got)
						return
					}
				}
				_, page := b.get(f.srv.URL+PathLogout+"?rd=/bye", false)
				_, v := form(t, page)
				b.post(f.srv.URL+PathLogout, v, false)
				if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
					errs <- fmt.Errorf("user %d: auth after logout %d", g, got)
					return
				}
				f.hubLogin(b, "alice", "alice-pw") // single logout ended the hub session
			}
		}(g)
	}
	users.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEndSessions(t *testing.T) {
	f := newFixture(t, fixtureOpts{sessionCache: time.Hour})
	var bs []*browser
	for i := 0; i < 2; i++ {
		b := f.browser()
		f.hubLogin(b, "alice", "alice-pw")
		f.sso(b, "/")
		if got := f.auth(b).StatusCode; got != http.StatusAccepted {
			t.Fatalf("auth %d", got)
		}
		bs = append(bs, b)
	}
	n, err := f.replicas[0].EndSessions(context.Background(), "hub1", aliceSubject)
	if err != nil || n != 2 {
		t.Fatalf("EndSessions = %d, %v", n, err)
	}
	for _, b := range bs {
		if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("auth after EndSessions: %d", got)
		}
	}
	if _, err := f.replicas[0].EndSessions(context.Background(), "", ""); err == nil {
		t.Fatal("EndSessions without a subject")
	}
}

// TestPOSTBinding: a hub that offers only the HTTP-POST binding gets the
// AuthnRequest and the LogoutRequest as auto-posting forms.
func TestPOSTBinding(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	redirect := regexp.MustCompile(`<(SingleSignOnService|SingleLogoutService) Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"[^>]*>(</(SingleSignOnService|SingleLogoutService)>)?`)
	md := redirect.ReplaceAll(f.hub.metadata(), nil)
	if bytes.Contains(md, []byte("HTTP-Redirect")) {
		t.Fatalf("redirect bindings left in the metadata:\n%s", md)
	}
	f.hubs.mu.Lock()
	f.hubs.hubs[0].Metadata = md
	f.hubs.mu.Unlock()
	b := f.browser()
	f.hubLogin(b, "alice", "alice-pw")
	resp, page := b.get(f.srv.URL+PathSAMLLogin+"?hub=hub1&rd=/p", false)
	action, fields := form(t, page)
	if resp.StatusCode != 200 || action != f.hub.srv.URL+"/sso" || fields.Get("SAMLRequest") == "" || fields.Get("RelayState") == "" {
		t.Fatalf("authn request form: %d %q %v", resp.StatusCode, action, fields)
	}
	_, answer := b.post(action, fields, true)
	acs, fields := form(t, answer)
	if resp, _ := b.post(acs, fields, false); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/p" {
		t.Fatalf("acs: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", f.srv.URL+PathLogout, nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, page = b.do(req, false)
	action, fields = form(t, page)
	if resp.StatusCode != 200 || action != f.hub.srv.URL+"/slo" || fields.Get("SAMLRequest") == "" {
		t.Fatalf("logout request form: %d %q", resp.StatusCode, action)
	}
	_, answer = b.post(action, fields, true) // the hub answers with the same binding
	action, fields = form(t, answer)
	if action != f.srv.URL+PathSLO || fields.Get("SAMLResponse") == "" {
		t.Fatalf("logout response form: %q", action)
	}
	resp, body := b.post(action, fields, true)
	if resp.Request.URL.Path != PathLogin || !strings.Contains(body, "You have been logged out.") {
		t.Fatalf("after single logout: %s %s", resp.Request.URL, body)
	}
	if n := f.hub.sessions(); n != 0 {
		t.Fatalf("hub sessions: %d", n)
	}
}

// TestSessionTimeouts: a session ends after SessionIdle without use and after
// SessionLifetime whatever the use.
func TestSessionTimeouts(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	store := stateSessions{memory.New(memory.Config{Clock: clock})}
	keyPEM, certPEM := testKeyPair(t, 1)
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s, err := New(Config{
		BaseURL: srv.URL, KeyPEM: keyPEM, CertPEM: certPEM, Hubs: &hubsList{}, Sessions: store, Replay: store,
		Accounts: newTestAccounts(), Local: testLocal{}, Clock: clock,
		SessionIdle: 10 * time.Minute, SessionLifetime: time.Hour, SessionCache: -1, AllowedCache: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	f := &fixture{t: t, srv: srv}
	login := func() *browser {
		b := f.browser()
		_, page := b.get(srv.URL+"/login", false)
		_, v := form(t, page)
		v.Set("username", "bob")
		v.Set("password", "bob-pw")
		if resp, _ := b.post(srv.URL+"/login", v, false); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login %d", resp.StatusCode)
		}
		return b
	}
	b := login()
	for i := 0; i < 4; i++ { // used every 9 minutes: alive past the idle timeout
		advance(9 * time.Minute)
		if got := f.auth(b).StatusCode; got != http.StatusAccepted {
			t.Fatalf("after %d × 9m of use: %d", i+1, got)
		}
	}
	advance(11 * time.Minute)
	if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("11m idle: %d", got)
	}
	b = login()
	for i := 0; i < 12; i++ { // used every 5 minutes for an hour
		advance(5 * time.Minute)
		want := http.StatusAccepted
		if i == 11 {
			want = http.StatusUnauthorized // the lifetime ends at 60m
		}
		if got := f.auth(b).StatusCode; got != want {
			t.Fatalf("at %dm: %d, want %d", (i+1)*5, got, want)
		}
	}
}
