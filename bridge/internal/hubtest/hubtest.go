// Package hubtest runs a real hub process (`connect hub serve`, built from
// cmd/connect) for the bridge's tests, with helpers to change its directory over
// SCIM and a reverse proxy in front of it that injects faults.
//
// The process itself (build, start, tokens, log, stop) is internal/testenv/hubproc's.
//
// It imports scim, internal/testenv/hubproc and the standard library only.
package hubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv/hubproc"
	"github.com/connectsso/connect/scim"
)

// Main runs the tests of a package that uses Start and removes the built binary
// afterwards. Call it from TestMain.
func Main(m *testing.M) { hubproc.Main(m) }

// Binary builds cmd/connect once per test binary and returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	return hubproc.Binary(tb)
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return hubproc.FreeAddr(tb, "127.0.0.1")
}

// Hub is a running hub process (Base, SCIM, DSN, the Admin token, Command, Do
// and Call come from hubproc.Hub).
type Hub struct {
	*hubproc.Hub
	// Reader is a read-only token (what a bridge gets for add-manual).
	Reader string
}

// Options tune Start.
type Options struct {
	// PasswordHashes turns the hub setting sync-password-hashes on.
	PasswordHashes bool
	// DSN, when set, is an existing store to serve (a seeded benchmark
	// directory) instead of a fresh one.
	DSN string
}

// Start runs `connect hub serve` on a fresh SQLite store. It skips under -short.
func Start(tb testing.TB, opts Options) *Hub {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts a hub process")
	}
	o := hubproc.HubOptions{DSN: opts.DSN, LogLevel: "warn"}
	if opts.PasswordHashes {
		o.Settings = []string{"sync-password-hashes=true"}
	}
	h := &Hub{Hub: hubproc.StartHub(tb, o)}
	h.Reader = h.Token(tb, "bridge", "--read-only")
	return h
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// User returns a user named userName with names, a primary email and the
// given employee number.
func User(userName string) scim.User {
	return scim.User{UserName: userName,
		Name:   &scim.Name{GivenName: "Given " + userName, FamilyName: "Family"},
		Emails: []scim.MultiValue{{Value: userName + "@example.org", Primary: true, Type: "work"}}}
}

// CreateUser creates u on the hub and returns it as stored.
func (h *Hub) CreateUser(tb testing.TB, u scim.User) scim.User {
	tb.Helper()
	u.SetSchemas()
	var out scim.User
	h.Call(tb, http.MethodPost, "/Users", u, &out, http.StatusCreated)
	return out
}

// CreateUsers creates n users named prefix0000… (8 in parallel), in name order.
func (h *Hub) CreateUsers(tb testing.TB, prefix string, n int) []scim.User {
	tb.Helper()
	out := make([]scim.User, n)
	hubproc.Parallel(tb, n, func(i int) error {
		u := User(fmt.Sprintf("%s%04d", prefix, i))
		u.SetSchemas()
		return h.Do(http.MethodPost, "/Users", u, &out[i], http.StatusCreated)
	})
	return out
}

// ReplaceUser PUTs u (u.ID set).
func (h *Hub) ReplaceUser(tb testing.TB, u scim.User) scim.User {
	tb.Helper()
	u.SetSchemas()
	u.Meta = nil
	var out scim.User
	h.Call(tb, http.MethodPut, "/Users/"+u.ID, u, &out, http.StatusOK)
	return out
}

// Patch sends a PATCH with the given operations to path ("/Users/id").
func (h *Hub) Patch(tb testing.TB, path string, ops ...map[string]any) {
	tb.Helper()
	body := map[string]any{"schemas": []string{scim.SchemaPatchOp}, "Operations": ops}
	h.Call(tb, http.MethodPatch, path, body, nil, http.StatusOK)
}

// SetActive sets a user's active flag.
func (h *Hub) SetActive(tb testing.TB, id string, active bool) {
	tb.Helper()
	h.Patch(tb, "/Users/"+id, map[string]any{"op": "replace", "path": "active", "value": active})
}

// DeleteUser deletes a user.
func (h *Hub) DeleteUser(tb testing.TB, id string) {
	tb.Helper()
	h.Call(tb, http.MethodDelete, "/Users/"+id, nil, nil, http.StatusNoContent)
}

// CreateGroup creates a group of kind ("audience", "course") with members.
func (h *Hub) CreateGroup(tb testing.TB, name, kind string, members ...string) scim.Group {
	tb.Helper()
	g := scim.Group{DisplayName: name, Connect: &scim.ConnectGroup{Kind: kind}}
	for _, m := range members {
		g.Members = append(g.Members, scim.Member{Value: m})
	}
	g.SetSchemas()
	var out scim.Group
	h.Call(tb, http.MethodPost, "/Groups", g, &out, http.StatusCreated)
	return out
}

// AddMembers adds users to a group.
func (h *Hub) AddMembers(tb testing.TB, groupID string, ids ...string) {
	tb.Helper()
	var vals []map[string]string
	for _, id := range ids {
		vals = append(vals, map[string]string{"value": id})
	}
	h.Patch(tb, "/Groups/"+groupID, map[string]any{"op": "add", "path": "members", "value": vals})
}

// RemoveMember removes a user from a group.
func (h *Hub) RemoveMember(tb testing.TB, groupID, id string) {
	tb.Helper()
	h.Patch(tb, "/Groups/"+groupID, map[string]any{"op": "remove", "path": `members[value eq "` + id + `"]`})
}

// DeleteGroup deletes a group.
func (h *Hub) DeleteGroup(tb testing.TB, id string) {
	tb.Helper()
	h.Call(tb, http.MethodDelete, "/Groups/"+id, nil, nil, http.StatusNoContent)
}

// Fault decides what to do with the n-th list request (GET /Users or /Groups
// listings, counted from 1 including retries): it returns true when it wrote the
// answer itself.
type Fault func(w http.ResponseWriter, r *http.Request, n int) bool

// Proxy is a reverse proxy in front of a hub that can inject faults.
type Proxy struct {
	*httptest.Server
	// SCIM is the proxy's SCIM base URL.
	SCIM   string
	target *url.URL
	rp     *httputil.ReverseProxy
	lists  atomic.Int64
	mu     sync.Mutex
	fault  Fault
	// hideCursors makes the hub look like a server without RFC 9865 cursors,
	// so clients page by index.
	hideCursors atomic.Bool
	// hideChanges makes the hub look like a plain SCIM server (no feed).
	hideChanges atomic.Bool
}

// HideChanges makes /Changes answer 404, as on a plain SCIM server.
func (p *Proxy) HideChanges() { p.hideChanges.Store(true) }

// HideCursors makes the proxied ServiceProviderConfig deny cursor paging.
func (p *Proxy) HideCursors() { p.hideCursors.Store(true) }

// NewProxy starts a proxy in front of h.
func NewProxy(tb testing.TB, h *Hub) *Proxy {
	tb.Helper()
	u, _ := url.Parse(h.Base)
	p := &Proxy{target: u, rp: httputil.NewSingleHostReverseProxy(u)}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	p.SCIM = p.URL + "/scim/v2"
	tb.Cleanup(p.Close)
	return p
}

// SetFault installs f (nil: pass everything through) and resets the counter.
func (p *Proxy) SetFault(f Fault) {
	p.mu.Lock()
	p.fault = f
	p.lists.Store(0)
	p.mu.Unlock()
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/scim/v2/Changes") && p.hideChanges.Load() {
		Status(w, http.StatusNotFound)
		return
	}
	if r.URL.Path == "/scim/v2/ServiceProviderConfig" && p.hideCursors.Load() {
		m := p.Fetch(r)
		if pg, ok := m["pagination"].(map[string]any); ok {
			pg["cursor"] = false
		}
		WriteJSON(w, m)
		return
	}
	if r.Method == http.MethodGet && (r.URL.Path == "/scim/v2/Users" || r.URL.Path == "/scim/v2/Groups") && r.URL.Query().Get("count") != "0" {
		n := int(p.lists.Add(1))
		p.mu.Lock()
		f := p.fault
		p.mu.Unlock()
		if f != nil && f(w, r, n) {
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

// Fetch performs r against the hub and returns the decoded JSON answer.
func (p *Proxy) Fetch(r *http.Request) map[string]any {
	u := *p.target
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	req, _ := http.NewRequest(r.Method, u.String(), nil)
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	resp, err := httpClient.Do(req)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

// WriteJSON writes v as a SCIM JSON answer.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/scim+json")
	_ = json.NewEncoder(w).Encode(v)
}

// Status answers with a SCIM error of code.
func Status(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"schemas":["%s"],"status":"%d"}`, scim.SchemaError, code)
}

// RewritePage returns a Fault that serves list page k (counting list requests
// from 1) with its decoded answer changed by f; prev is the answer to the
// previous list request.
func (p *Proxy) RewritePage(k int, f func(m, prev map[string]any)) Fault {
	var mu sync.Mutex
	var prev map[string]any
	return func(w http.ResponseWriter, r *http.Request, n int) bool {
		m := p.Fetch(r)
		mu.Lock()
		if n == k {
			f(m, prev)
		}
		prev = m
		mu.Unlock()
		WriteJSON(w, m)
		return true
	}
}

// ScopedClient registers a client system on the hub through the real
// handshake (`connect hub clients add`) against a stand-in register endpoint,
// and returns the SCIM URL and client-scoped bridge token the hub handed over.
// args are extra `clients add` flags (--restrict-audience, --audience, …).
func (h *Hub) ScopedClient(tb testing.TB, name string, args ...string) (scimURL, token string) {
	tb.Helper()
	var got scim.RegisterRequest
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case scim.RegisterPath:
			if err := json.NewDecoder(r.Body).Decode(&got); err != nil || got.Secret != "test-secret-0123456789abcdef" {
				w.WriteHeader(http.StatusForbidden)
				_ = json.NewEncoder(w).Encode(scim.HandshakeError{Code: scim.HandshakeBadSecret})
				return
			}
			md := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="` + srv.URL + `/saml/metadata">` +
				`<SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
				`<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="` + srv.URL + `/saml/acs" index="1"/>` +
				`</SPSSODescriptor></EntityDescriptor>`
			_ = json.NewEncoder(w).Encode(scim.RegisterResponse{ServerID: "test", SPEntityID: srv.URL + "/saml/metadata", SPMetadata: md})
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	tb.Cleanup(srv.Close)
	h.Command(tb, append([]string{"hub", "clients", "add", "--store", h.DSN, "--name", name, "--url", srv.URL,
		"--secret", "test-secret-0123456789abcdef", "--hub-url", h.Base}, args...)...)
	if got.Token == "" || got.SCIMURL == "" {
		tb.Fatalf("the hub did not hand over a token: %+v", got)
	}
	return got.SCIMURL, got.Token
}
