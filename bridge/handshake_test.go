package bridge_test

import (
	"context"
	"encoding/xml"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"crypto"
	"crypto/x509"
	"encoding/pem"

	"github.com/crewjam/saml"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local/sqlite"
	"github.com/connectsso/connect/saml/sp"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/hub"
	"github.com/connectsso/connect/scim/store"
	hubsqlite "github.com/connectsso/connect/scim/store/sqlite"
)

// inHub is a hub served in-process (SCIM, IdP metadata, is_hub on the
// register path) on a loopback port.
type inHub struct {
	url  string
	st   *hubsqlite.Store
	stop func()
}

func startInHub(t *testing.T) *inHub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := hubsqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), hubsqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cancel() // serve has its own context
	h := &inHub{url: "http://" + ln.Addr().String(), st: st}
	h.serve(t, ln)
	t.Cleanup(func() { h.stop(); st.Close() })
	return h
}

func (h *inHub) serve(t *testing.T, ln net.Listener) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := hub.New(hub.Config{Name: "Test hub", Listen: ln.Addr().String(), URL: h.url, Store: h.st})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
}

// inBridge is a bridge's handshake endpoints on a SQLite local directory.
type inBridge struct {
	url string
	dir *sqlite.Dir
	hs  *bridge.Handshake
}

func startInBridge(t *testing.T) *inBridge {
	t.Helper()
	ctx := context.Background()
	dir, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "bridge.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	b := &inBridge{dir: dir}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b.url = srv.URL
	keyPEM, certPEM, err := sp.NewKeyPair("bridge", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.hs = &bridge.Handshake{Records: dir, SPMetadata: func(context.Context) (string, []byte, error) {
		return spMetadata(t, b.url, keyPEM, certPEM)
	}}
	mux.HandleFunc(scim.RegisterPath, b.hs.ServeRegister)
	mux.HandleFunc(scim.UnregisterPath, b.hs.ServeUnregister)
	return b
}

// spMetadata is SP metadata for base, written by crewjam/saml.
func spMetadata(t *testing.T, base string, keyPEM, certPEM []byte) (string, []byte, error) {
	t.Helper()
	signer, cert := parsePair(t, keyPEM, certPEM)
	mdURL, _ := url.Parse(base + "/saml/metadata")
	acsURL, _ := url.Parse(base + "/saml/acs")
	s := saml.ServiceProvider{EntityID: mdURL.String(), Key: signer, Certificate: cert, MetadataURL: *mdURL, AcsURL: *acsURL}
	md, err := xml.Marshal(s.Metadata())
	return s.EntityID, md, err
}

func (b *inBridge) servers(t *testing.T) []bridge.Server {
	t.Helper()
	all, err := bridge.ListServers(context.Background(), b.dir)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func (b *inBridge) secret(t *testing.T, ttl time.Duration) string {
	t.Helper()
	s, err := bridge.NewSetupSecret(context.Background(), b.dir, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *inHub) connect() hub.Connect {
	return hub.Connect{HubURL: h.url, HubName: "Test hub", Actor: "test"}
}

func (h *inHub) clients(t *testing.T) []store.Client {
	t.Helper()
	all, err := h.st.ListClients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// unchanged fails unless the hub has no client, SP or bridge token and the
// bridge no server.
func unchanged(t *testing.T, h *inHub, b *inBridge) {
	t.Helper()
	if cs := h.clients(t); len(cs) != 0 {
		t.Fatalf("the hub kept %d client(s) after a failed handshake", len(cs))
	}
	if sps, _ := h.st.ListServiceProviders(context.Background()); len(sps) != 0 {
		t.Fatalf("the hub kept %d SP(s) after a failed handshake", len(sps))
	}
	toks, _ := h.st.ListTokens(context.Background())
	for _, tk := range toks {
		if tk.ClientID != "" && !tk.Revoked {
			t.Fatalf("the hub kept a live bridge token %q after a failed handshake", tk.Name)
		}
	}
	if b != nil {
		if ss := b.servers(t); len(ss) != 0 {
			t.Fatalf("the bridge kept %d server(s) after a failed handshake", len(ss))
		}
	}
}

func TestHandshake(t *testing.T) {
	ctx := context.Background()
	h := startInHub(t)
	b := startInBridge(t)
	secret := b.secret(t, time.Hour)

	c, err := hub.AddClient(ctx, h.st, h.connect(), b.url, secret, hub.ClientOptions{Name: "Site A", Comment: "test"})
	if err != nil {
		t.Fatalf("AddClient: %v", err)
	}
	if c.EntityID != b.url+"/saml/metadata" {
		t.Fatalf("client entity %q", c.EntityID)
	}
	spr, err := h.st.ServiceProvider(ctx, c.EntityID)
	if err != nil || spr.ClientID != c.ID {
		t.Fatalf("the bridge's SP on the hub = %+v, %v", spr, err)
	}
	ss := b.servers(t)
	if len(ss) != 1 || ss[0].Hub == nil || ss[0].Hub.ClientID != c.ID || ss[0].Manual || ss[0].URL != h.url+"/scim/v2" {
		t.Fatalf("bridge servers = %+v", ss)
	}
	if !strings.Contains(string(ss[0].Hub.Metadata), "IDPSSODescriptor") {
		t.Fatalf("the bridge did not pin the hub's IdP metadata")
	}
	// The delivered token reads the hub's SCIM API, inside the client's scope.
	req, _ := http.NewRequest("GET", ss[0].URL+"/Users", nil)
	req.Header.Set("Authorization", "Bearer "+ss[0].Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET /Users with the delivered token = %d", res.StatusCode)
	}

	// Reused secret: refused, and a second hub keeps nothing.
	h2 := startInHub(t)
	_, err = hub.AddClient(ctx, h2.st, h2.connect(), b.url, secret, hub.ClientOptions{Name: "Again"})
	var he *hub.HandshakeError
	if !errors.As(err, &he) || he.Code != scim.HandshakeBadSecret {
		t.Fatalf("reused secret: %v", err)
	}
	unchanged(t, h2, nil)
	if len(b.servers(t)) != 1 {
		t.Fatalf("a refused handshake changed the bridge")
	}

	// Duplicate client URL on the same hub.
	_, err = hub.AddClient(ctx, h.st, h.connect(), b.url, b.secret(t, time.Hour), hub.ClientOptions{Name: "Dup"})
	if err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("duplicate URL: %v", err)
	}
	if len(h.clients(t)) != 1 {
		t.Fatalf("a duplicate URL changed the hub")
	}

	// The bridge leaving: only its own token may remove its client.
	post := func(token string) int {
		req, _ := http.NewRequest("POST", h.url+scim.DisconnectPath, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post(""); code != 401 {
		t.Fatalf("disconnect without a token = %d", code)
	}
	if code := post("cbr_wrong"); code != 401 || len(h.clients(t)) != 1 {
		t.Fatalf("disconnect with a wrong token = %d", code)
	}
	if code := post(ss[0].Token); code != 204 {
		t.Fatalf("disconnect = %d", code)
	}
	unchanged(t, h, nil)
}

func TestHandshakeFailures(t *testing.T) {
	ctx := context.Background()
	h := startInHub(t)
	b := startInBridge(t)
	other := startInHub(t)

	for _, tt := range []struct {
		name   string
		url    func() string
		secret func() string
		want   string
	}{
		{"wrong secret", func() string { return b.url }, func() string { return "cs-not-a-secret" }, "wrong, expired or already used"},
		{"expired secret", func() string { return b.url }, func() string {
			s := b.secret(t, 10*time.Millisecond)
			time.Sleep(50 * time.Millisecond)
			return s
		}, "wrong, expired or already used"},
		{"unreachable client URL", func() string { return "http://127.0.0.1:1" }, func() string { return b.secret(t, time.Hour) }, "does not answer"},
		{"not a bridge", func() string { return b.url + "/nothing-here" }, func() string { return b.secret(t, time.Hour) }, "not a Connect bridge"},
		{"hub connecting to itself", func() string { return h.url }, func() string { return b.secret(t, time.Hour) }, "cannot connect to itself"},
		{"hub connecting to itself by another name", func() string { return strings.Replace(h.url, "127.0.0.1", "localhost", 1) }, func() string { return b.secret(t, time.Hour) }, "cannot connect to itself"},
		{"client URL is another hub", func() string { return other.url }, func() string { return b.secret(t, time.Hour) }, "is a Connect hub"},
		{"plain http off loopback", func() string { return "http://bridge.example.org" }, func() string { return b.secret(t, time.Hour) }, "plain http"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hub.AddClient(ctx, h.st, h.connect(), tt.url(), tt.secret(), hub.ClientOptions{Name: "Site"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AddClient = %v, want an error saying %q", err, tt.want)
			}
			unchanged(t, h, b)
		})
	}

	// The bridge registers but its answer is lost (the connection drops): the
	// hub undoes the registration on the bridge too, not only its own half.
	lost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != scim.RegisterPath {
			b.hs.ServeUnregister(w, r)
			return
		}
		b.hs.ServeRegister(httptest.NewRecorder(), r)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(lost.Close)
	if _, err := hub.AddClient(ctx, h.st, h.connect(), lost.URL, b.secret(t, time.Hour), hub.ClientOptions{Name: "Site"}); err == nil {
		t.Fatal("AddClient succeeded although the bridge's answer was lost")
	}
	unchanged(t, h, b)

	// The bridge cannot reach the hub's metadata: refused, and the secret is
	// still good afterwards (nothing changed on the bridge).
	secret := b.secret(t, time.Hour)
	_, err := hub.AddClient(ctx, h.st, hub.Connect{HubURL: "http://127.0.0.1:1", HubName: "Unreachable", Actor: "test"}, b.url, secret, hub.ClientOptions{Name: "Site"})
	if err == nil || !strings.Contains(err.Error(), "could not fetch this hub's SAML metadata") {
		t.Fatalf("unreachable hub metadata: %v", err)
	}
	unchanged(t, h, b)
	if _, err := hub.AddClient(ctx, h.st, h.connect(), b.url, secret, hub.ClientOptions{Name: "Site"}); err != nil {
		t.Fatalf("the secret did not survive a failed handshake: %v", err)
	}
}

func parsePair(t *testing.T, keyPEM, certPEM []byte) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	kb, _ := pem.Decode(keyPEM)
	cb, _ := pem.Decode(certPEM)
	if kb == nil || cb == nil {
		t.Fatal("bad PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer), cert
}
