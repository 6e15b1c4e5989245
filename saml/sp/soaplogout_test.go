package sp

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/bridge/state/memory"
	redisstate "github.com/connectsso/connect/bridge/state/redis"
	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/hub"
	"github.com/connectsso/connect/scim/password"
)

// lockedBuffer is a log sink safe for the servers' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// multiBridge is a real Connect hub (scim/hub with saml/idp) and three
// bridges, each with its own state, on https://hub.example.com and
// https://siteN.example.com (dialled on loopback).
type multiBridge struct {
	env     *connectHub // hubURL, hubTLS and browser() only
	hubReg  *prometheus.Registry
	hubLog  *lockedBuffer
	sites   []*httptest.Server
	sps     []*SP
	regs    []*prometheus.Registry
	stores  []stateSessions
	subject string
}

// bridgeState is one bridge's own state: Redis under a prefix of its own
// (bridges never share sessions), or in process.
func bridgeState(tb testing.TB, useRedis bool, i int) state.State {
	tb.Helper()
	if !useRedis {
		return memory.New(memory.Config{})
	}
	st, err := redisstate.New(redisstate.Config{Client: goredis.NewClient(&goredis.Options{Addr: testenv.RedisAddr(tb)}), Prefix: fmt.Sprintf("%s-site%d", testenv.Name(tb), i)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// alg is the hub's signing algorithm ("" for RSA, "ecdsa").
func newMultiBridge(tb testing.TB, useRedis bool, n int, alg string) *multiBridge {
	tb.Helper()
	ctx := context.Background()
	st, hubSrv := newHubStoreAndServer(tb)
	m := &multiBridge{env: &connectHub{hubURL: hubSrv.URL, hubTLS: hubSrv}, hubReg: prometheus.NewRegistry(), hubLog: &lockedBuffer{}}
	// The hub reaches the bridges' SOAP endpoints as a browser would: by
	// name, on loopback, trusting the test certificate.
	backChannel := m.env.browser(tb).c
	backChannel.Jar = nil
	h, err := hub.New(hub.Config{
		Listen: "127.0.0.1:0", URL: hubSrv.URL, Name: "Connect Hub", Store: st,
		Logger:   slog.New(slog.NewTextHandler(m.hubLog, nil)),
		Registry: m.hubReg, Version: "test",
		SAML: hub.SAMLConfig{BackChannelClient: backChannel, Algorithm: alg},
	})
	if err != nil {
		tb.Fatal(err)
	}
	hubSrv.Config.Handler = h.Handler()
	pw, err := password.Hash("alice-pw")
	if err != nil {
		tb.Fatal(err)
	}
	alice, err := st.CreateUser(ctx, scim.User{
		UserName: "alice", DisplayName: "Alice Liddell",
		Emails: []scim.MultiValue{{Value: "alice@example.org", Primary: true}}, Active: scim.BoolPtr(true),
		Connect: &scim.ConnectUser{PasswordHash: pw},
	})
	if err != nil {
		tb.Fatal(err)
	}
	m.subject = alice.ID
	_, md := m.env.browser(tb).get(hubSrv.URL+"/saml/metadata", false)
	keyPEM, certPEM := testKeyPair(tb, 1)
	for i := 1; i <= n; i++ {
		site := httptest.NewUnstartedServer(nil)
		site.StartTLS()
		tb.Cleanup(site.Close)
		site.URL = strings.Replace(site.URL, "127.0.0.1", fmt.Sprintf("site%d.example.com", i), 1)
		store := stateSessions{bridgeState(tb, useRedis, i)}
		reg := prometheus.NewRegistry()
		s, err := New(Config{
			BaseURL: site.URL, SiteName: fmt.Sprintf("Site %d", i), KeyPEM: keyPEM, CertPEM: certPEM,
			Hubs:     &hubsList{hubs: []Hub{{ID: "hub1", Name: "Connect Hub", Metadata: []byte(md)}}},
			Sessions: store, Replay: store, Accounts: newTestAccounts(), AllowedCache: -1, SessionCache: -1,
			Registerer: reg,
		})
		if err != nil {
			tb.Fatal(err)
		}
		site.Config.Handler = s.Handler()
		spMD, err := s.Metadata(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := hub.RegisterServiceProvider(ctx, st, fmt.Sprintf("site%d", i), spMD, "test", false); err != nil {
			tb.Fatal(err)
		}
		m.sites = append(m.sites, site)
		m.sps = append(m.sps, s)
		m.regs = append(m.regs, reg)
		m.stores = append(m.stores, store)
	}
	return m
}

// login logs the browser in to site i (the first one through the hub's
// password form, the others through the hub session).
func (m *multiBridge) login(tb testing.TB, b *browser, i int) {
	tb.Helper()
	env := *m.env
	env.siteURL = m.sites[i].URL
	if resp := env.login(tb, b, "/app"); resp.StatusCode != http.StatusSeeOther {
		tb.Fatalf("login to site %d: %d", i+1, resp.StatusCode)
	}
	if a, _ := b.get(m.sites[i].URL+PathAuth, false); a.StatusCode != http.StatusAccepted {
		tb.Fatalf("site %d session after login: %d", i+1, a.StatusCode)
	}
}

func (m *multiBridge) auth(b *browser, i int) int {
	a, _ := b.get(m.sites[i].URL+PathAuth, false)
	return a.StatusCode
}

// TestBackChannelLogout: a hub and three bridges, logged in to all three;
// one bridge is down (stopped, or hanging) and the user logs out at
// another. The hub ends its session, logs the live bridge out server to
// server, and the browser gets its final page within a few seconds; the
// failure is logged and counted.
func TestBackChannelLogout(t *testing.T) {
	for _, down := range []string{"stopped", "hanging"} {
		t.Run(down, func(t *testing.T) {
			backends(t, func(t *testing.T, useRedis bool) {
				m := newMultiBridge(t, useRedis, 3, "")
				b := m.env.browser(t)
				for i := range m.sites {
					m.login(t, b, i)
				}
				// Bridge 3 goes down.
				deadURL := m.sites[2].URL
				if down == "stopped" {
					m.sites[2].Close()
				} else {
					// Accepts the connection and never answers (until the
					// test ends: cleanups run last-in first-out).
					stop := make(chan struct{})
					t.Cleanup(func() { close(stop) })
					m.sites[2].Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						_, _ = io.Copy(io.Discard, r.Body)
						select {
						case <-r.Context().Done():
						case <-stop:
						}
					})
				}

				start := time.Now()
				req, _ := http.NewRequest("GET", m.sites[1].URL+PathLogout, nil)
				req.Header.Set("Sec-Fetch-Site", "same-origin")
				resp, body := b.do(req, true)
				took := time.Since(start)
				t.Logf("logout with bridge 3 %s took %v", down, took)
				if resp.Request.URL.Host != strings.TrimPrefix(m.sites[1].URL, "https://") || resp.Request.URL.Path != PathLogin || !strings.Contains(body, "You have been logged out.") {
					t.Fatalf("final page: %s %d %s", resp.Request.URL, resp.StatusCode, body)
				}
				if took > 5*time.Second {
					t.Errorf("logout took %v with one bridge %s (back-channel timeout 3 s)", took, down)
				}
				for _, i := range []int{0, 1} {
					if got := m.auth(b, i); got != http.StatusUnauthorized {
						t.Errorf("site %d session after single logout: %d", i+1, got)
					}
				}
				if got := gathered(t, m.regs[0], "connect_bridge_sso_logouts_total", "kind", "from_hub"); got != 1 {
					t.Errorf("site 1 logouts{from_hub} = %v", got)
				}
				// The hub session is gone: site 1 asks for the password again.
				_, page := b.get(m.sites[0].URL+PathSAMLLogin+"?hub=hub1", true)
				if !strings.Contains(page, `name="password"`) {
					t.Errorf("hub session survived single logout: %.300s", page)
				}
				if got := gathered(t, m.hubReg, "connect_hub_saml_backchannel_logouts_total", "result", "success"); got != 1 {
					t.Errorf("hub back-channel success = %v", got)
				}
				if got := gathered(t, m.hubReg, "connect_hub_saml_backchannel_logouts_total", "result", "failed"); got != 1 {
					t.Errorf("hub back-channel failed = %v", got)
				}
				if logs := m.hubLog.String(); !strings.Contains(logs, "back-channel logout failed") || !strings.Contains(logs, deadURL+PathMetadata) {
					t.Errorf("hub log does not name the failed bridge:\n%s", logs)
				}
				// The bridge that was down kept its session (it could not be
				// told); nothing else was ended there.
				if n, err := m.stores[2].DeleteSessions(context.Background(), "hub1", m.subject); err != nil || n != 1 {
					t.Errorf("sessions left on the bridge that was down: %d, %v", n, err)
				}
			})
		})
	}
}

// TestBackChannelLogoutFallback: a bridge that is up but whose SOAP answer
// fails (HTTP 500; a LogoutResponse that is unsigned, or signed by a key
// that is not in its registered metadata) is not counted as logged out, nor
// given up on: the hub sends the browser there with a LogoutRequest, as to
// an SP without SOAP, and the logout still ends on the page of the bridge
// it started at.
func TestBackChannelLogoutFallback(t *testing.T) {
	otherKey, otherCert := testKeyPair(t, 3)
	for _, tt := range []struct {
		name   string
		answer func(t *testing.T, w http.ResponseWriter, r *http.Request, issuer string)
	}{
		{"http 500", func(t *testing.T, w http.ResponseWriter, r *http.Request, issuer string) {
			http.Error(w, "state store down", http.StatusInternalServerError)
		}},
		{"unsigned", func(t *testing.T, w http.ResponseWriter, r *http.Request, issuer string) {
			writeLogoutResponse(t, w, r, issuer, nil, nil)
		}},
		{"wrong key", func(t *testing.T, w http.ResponseWriter, r *http.Request, issuer string) {
			writeLogoutResponse(t, w, r, issuer, otherKey, otherCert)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMultiBridge(t, false, 3, "")
			b := m.env.browser(t)
			for i := range m.sites {
				m.login(t, b, i)
			}
			site3 := m.sps[2].Handler()
			m.sites[2].Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == PathSLOSOAP {
					tt.answer(t, w, r, m.sps[2].EntityID())
					return
				}
				site3.ServeHTTP(w, r)
			})
			req, _ := http.NewRequest("GET", m.sites[1].URL+PathLogout, nil)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, body := b.do(req, true)
			if resp.Request.URL.Host != strings.TrimPrefix(m.sites[1].URL, "https://") || resp.Request.URL.Path != PathLogin || !strings.Contains(body, "You have been logged out.") {
				t.Fatalf("final page: %s %d %s", resp.Request.URL, resp.StatusCode, body)
			}
			for i := range m.sites {
				if got := m.auth(b, i); got != http.StatusUnauthorized {
					t.Errorf("site %d session after single logout: %d", i+1, got)
				}
			}
			for result, want := range map[string]float64{"success": 1, "front_channel": 1, "failed": 0} {
				if got := gathered(t, m.hubReg, "connect_hub_saml_backchannel_logouts_total", "result", result); got != want {
					t.Errorf("hub back-channel %s = %v, want %v", result, got, want)
				}
			}
			if got := gathered(t, m.regs[2], "connect_bridge_sso_logouts_total", "kind", "from_hub"); got != 1 {
				t.Errorf("site 3 logouts{from_hub} = %v (through the browser)", got)
			}
		})
	}
}

// writeLogoutResponse answers the SOAP LogoutRequest r with a Success
// LogoutResponse from issuer, signed with keyPEM (nil: unsigned).
func writeLogoutResponse(t *testing.T, w http.ResponseWriter, r *http.Request, issuer string, keyPEM, certPEM []byte) {
	doc := etree.NewDocument()
	if _, err := doc.ReadFrom(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	lr := doc.FindElement("//LogoutRequest")
	if lr == nil {
		http.Error(w, "no LogoutRequest", http.StatusBadRequest)
		return
	}
	resp := &saml.LogoutResponse{
		ID: "id-" + newToken(), InResponseTo: lr.SelectAttrValue("ID", ""), Version: "2.0", IssueInstant: time.Now().UTC(),
		Issuer: &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: issuer},
		Status: saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	el := resp.Element()
	if keyPEM != nil {
		kp, err := parseKeyPair(keyPEM, certPEM)
		if err != nil {
			t.Error(err)
			return
		}
		sc, err := dsig.NewSigningContext(kp.signer, [][]byte{kp.cert.Raw})
		if err != nil {
			t.Error(err)
			return
		}
		sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
		if el, err = sc.SignEnveloped(el); err != nil {
			t.Error(err)
			return
		}
	}
	env := etree.NewElement("soapenv:Envelope")
	env.CreateAttr("xmlns:soapenv", "http://schemas.xmlsoap.org/soap/envelope/")
	env.CreateElement("soapenv:Body").AddChild(el)
	out := etree.NewDocument()
	out.SetRoot(env)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = out.WriteTo(w)
}

// The hub signs with RSA, or with ECDSA (r || s signatures the bridge
// converts before verifying).
func TestBackChannelLogoutFromHub(t *testing.T) {
	for _, alg := range []string{"rsa", "ecdsa"} {
		t.Run(alg, func(t *testing.T) { testBackChannelLogoutFromHub(t, alg) })
	}
}

func testBackChannelLogoutFromHub(t *testing.T, alg string) {
	m := newMultiBridge(t, false, 3, alg)
	b := m.env.browser(t)
	for i := range m.sites {
		m.login(t, b, i)
	}
	deadURL := m.sites[2].URL
	m.sites[2].Close()
	resp, page := b.get(m.env.hubURL+"/logout", false)
	action, fields := form(t, page)
	start := time.Now()
	resp, body := b.post(resolve(t, resp.Request.URL, action), fields, false)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You have been logged out.") || !strings.Contains(body, deadURL+PathMetadata) {
		t.Fatalf("hub logout: %d %s", resp.StatusCode, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("hub logout took %v", took)
	}
	for _, i := range []int{0, 1} {
		if got := m.auth(b, i); got != http.StatusUnauthorized {
			t.Errorf("site %d session after hub logout: %d", i+1, got)
		}
	}
	if got := gathered(t, m.hubReg, "connect_hub_saml_backchannel_logouts_total", "result", "success"); got != 2 {
		t.Errorf("hub back-channel success = %v", got)
	}
}

// soapLogoutRequest builds a SOAP LogoutRequest from issuer for subject,
// signed with keyPEM/certPEM using method (nil key: unsigned).
func soapLogoutRequest(tb testing.TB, issuer, dest, subject string, keyPEM, certPEM []byte, method string, hash crypto.Hash) []byte {
	tb.Helper()
	lr := &saml.LogoutRequest{
		ID: "id-" + newToken(), Version: "2.0", IssueInstant: time.Now().UTC(), Destination: dest,
		Issuer: &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: issuer},
		NameID: &saml.NameID{Format: string(saml.PersistentNameIDFormat), Value: subject},
	}
	el := lr.Element()
	if keyPEM != nil {
		kp, err := parseKeyPair(keyPEM, certPEM)
		if err != nil {
			tb.Fatal(err)
		}
		sc, err := dsig.NewSigningContext(kp.signer, [][]byte{kp.cert.Raw})
		if err != nil {
			tb.Fatal(err)
		}
		sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
		sc.Hash = hash
		if err := sc.SetSignatureMethod(method); err != nil {
			tb.Fatal(err)
		}
		if el, err = sc.SignEnveloped(el); err != nil {
			tb.Fatal(err)
		}
	}
	env := etree.NewElement("soapenv:Envelope")
	env.CreateAttr("xmlns:soapenv", "http://schemas.xmlsoap.org/soap/envelope/")
	env.CreateElement("soapenv:Body").AddChild(el)
	doc := etree.NewDocument()
	doc.SetRoot(env)
	out, err := doc.WriteToBytes()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestSOAPLogoutRefused: the bridge's SOAP endpoint ends sessions only for
// a LogoutRequest signed (not with SHA-1) by the pinned hub key, once.
func TestSOAPLogoutRefused(t *testing.T) {
	backends(t, func(t *testing.T, useRedis bool) {
		f := newFixture(t, fixtureOpts{redis: useRedis})
		b := f.browser()
		f.hubLogin(b, "alice", "alice-pw")
		f.sso(b, "/")
		hubKey, hubCert := testKeyPair(t, 0)
		otherKey, otherCert := testKeyPair(t, 3)
		issuer := f.hub.srv.URL + "/metadata"
		dest := f.srv.URL + PathSLOSOAP
		post := func(body []byte, contentType string) (int, string) {
			req, _ := http.NewRequest("POST", dest, bytes.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(out)
		}
		for _, tt := range []struct {
			name string
			body []byte
			ct   string
		}{
			{"unsigned", soapLogoutRequest(t, issuer, dest, aliceSubject, nil, nil, "", 0), "text/xml"},
			{"wrong key", soapLogoutRequest(t, issuer, dest, aliceSubject, otherKey, otherCert, dsig.RSASHA256SignatureMethod, crypto.SHA256), "text/xml"},
			{"sha1", soapLogoutRequest(t, issuer, dest, aliceSubject, hubKey, hubCert, dsig.RSASHA1SignatureMethod, crypto.SHA1), "text/xml"},
			{"unknown issuer", soapLogoutRequest(t, "https://evil.example.com/metadata", dest, aliceSubject, hubKey, hubCert, dsig.RSASHA256SignatureMethod, crypto.SHA256), "text/xml"},
			{"wrong destination", soapLogoutRequest(t, issuer, f.srv.URL+PathSLO, aliceSubject, hubKey, hubCert, dsig.RSASHA256SignatureMethod, crypto.SHA256), "text/xml"},
			{"not soap", soapLogoutRequest(t, issuer, dest, aliceSubject, hubKey, hubCert, dsig.RSASHA256SignatureMethod, crypto.SHA256), "application/x-www-form-urlencoded"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				code, body := post(tt.body, tt.ct)
				if code != http.StatusInternalServerError || !strings.Contains(body, "Fault") {
					t.Errorf("answer %d %s, want a SOAP fault", code, body)
				}
				if got := f.auth(b).StatusCode; got != http.StatusAccepted {
					t.Fatalf("session ended by a refused request: %d", got)
				}
			})
		}
		if got := f.metric(0, "connect_bridge_sso_logouts_total", "kind", "hub_refused"); got != 6 {
			t.Errorf("logouts{hub_refused} = %v", got)
		}

		// The hub's key: the session ends, and the answer is a LogoutResponse
		// signed by the bridge. The same request again is a replay.
		good := soapLogoutRequest(t, issuer, dest, aliceSubject, hubKey, hubCert, dsig.RSASHA256SignatureMethod, crypto.SHA256)
		code, body := post(good, "text/xml; charset=utf-8")
		if code != http.StatusOK || !strings.Contains(body, "LogoutResponse") || !strings.Contains(body, saml.StatusSuccess) || !strings.Contains(body, "SignatureValue") {
			t.Fatalf("valid request: %d %s", code, body)
		}
		if got := f.auth(b).StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("session after a valid back-channel logout: %d", got)
		}
		f.hubLogin(b, "alice", "alice-pw")
		f.sso(b, "/")
		if code, _ := post(good, "text/xml"); code != http.StatusInternalServerError {
			t.Errorf("replayed request: %d", code)
		}
		if got := f.auth(b).StatusCode; got != http.StatusAccepted {
			t.Fatalf("session ended by a replayed request: %d", got)
		}
	})
}
