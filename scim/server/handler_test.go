package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/server"
	"github.com/connectsso/connect/scim/store"
)

// call sends one request to h's server with the given token.
func (h *hub) call(t *testing.T, token, method, path string, body any, hdr ...string) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, h.srv.URL+server.DefaultPrefix+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return res.StatusCode, res.Header, m
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  server.Config
		want []string
	}{
		{"empty", server.Config{}, []string{"Store is required", "BaseURL is required"}},
		{"relative URL", server.Config{BaseURL: "/hub"}, []string{"Store is required", "not an absolute"}},
		{"everything wrong", server.Config{BaseURL: "ftp://x", Prefix: "scim/", MaxBodyBytes: -1, MaxPageSize: -1, DefaultPageSize: -2, ChangesRetention: -1, FilterLimits: filter.Limits{MaxDepth: -1}},
			[]string{"Store", "not an absolute", "Prefix", "MaxBodyBytes", "MaxPageSize must", "DefaultPageSize must", "FilterLimits", "ChangesRetention"}},
		{"default page over max", server.Config{BaseURL: "https://hub.example", MaxPageSize: 10, DefaultPageSize: 20}, []string{"Store", "exceeds MaxPageSize"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			if _, err := server.New(tt.cfg); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
	h := newHub(t)
	if err := (server.Config{Store: h.store, BaseURL: "https://hub.example/base"}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestTokens(t *testing.T) {
	h := newHub(t)
	for _, tt := range []struct {
		name, token, method, path string
		want                      int
	}{
		{"admin reads", adminSecret, "GET", "/Users", 200},
		{"read-only reads", readOnlySecret, "GET", "/Users", 200},
		{"read-only searches", readOnlySecret, "POST", "/Users/.search", 200},
		{"read-only cannot write", readOnlySecret, "POST", "/Users", 403},
		{"bridge token of an unknown client", bridgeSecret, "GET", "/Users", 401},
		{"no token", "", "GET", "/Schemas", 401},
		{"unknown token", "nope", "GET", "/Users", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.method == "POST" {
				body = map[string]any{"schemas": []string{scim.SchemaSearchRequest}}
				if !strings.HasSuffix(tt.path, ".search") {
					body = map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "x"}
				}
			}
			code, hdr, m := h.call(t, tt.token, tt.method, tt.path, body)
			if code != tt.want {
				t.Fatalf("%s %s = %d, want %d (%v)", tt.method, tt.path, code, tt.want, m)
			}
			if code == 401 && hdr.Get("WWW-Authenticate") != `Bearer realm="connect"` {
				t.Errorf("WWW-Authenticate = %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}
	if err := h.store.RevokeToken(context.Background(), "admin"); err != nil {
		t.Fatal(err)
	}
	// The token was just used: the handler's cache may accept it for up to
	// TokenCacheTTL more, never longer.
	h.advance(server.DefaultTokenCacheTTL)
	if code, _, _ := h.call(t, adminSecret, "GET", "/Users", nil); code != 401 {
		t.Errorf("revoked token after the cache TTL: %d", code)
	}
}

// TestTokenCache shows what the token cache changes: a revoked token stays
// usable until its cache entry expires (the documented bound), an unknown
// token is never cached (a token created later works at once), and a
// negative TTL turns the cache off.
func TestTokenCache(t *testing.T) {
	ctx := context.Background()
	h := newHub(t)
	now := time.Now()
	const ttl = 2 * time.Second
	handler := func(ttl time.Duration) http.Handler {
		hd, err := server.New(server.Config{Store: h.store, BaseURL: "https://hub.example", TokenCacheTTL: ttl,
			Clock: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return hd
	}
	cached, uncached := handler(ttl), handler(-1)
	get := func(hd http.Handler, secret string) int {
		t.Helper()
		req := httptest.NewRequest("GET", "/scim/v2/ServiceProviderConfig", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, req)
		return rec.Code
	}
	if c := get(cached, readOnlySecret); c != 200 {
		t.Fatalf("read-only token: %d", c)
	}
	if err := h.store.RevokeToken(ctx, "reader"); err != nil {
		t.Fatal(err)
	}
	if c := get(uncached, readOnlySecret); c != 401 {
		t.Errorf("uncached handler after revoke = %d, want 401", c)
	}
	if c := get(cached, readOnlySecret); c != 200 {
		t.Errorf("revoked token within the TTL of its lookup = %d, want 200 (cached)", c)
	}
	now = now.Add(ttl - time.Nanosecond)
	if c := get(cached, readOnlySecret); c != 200 {
		t.Errorf("revoked token just inside the TTL = %d, want 200 (cached)", c)
	}
	now = now.Add(time.Nanosecond)
	if c := get(cached, readOnlySecret); c != 401 {
		t.Errorf("revoked token at the TTL = %d, want 401", c)
	}
	if c := get(cached, readOnlySecret); c != 401 {
		t.Errorf("revoked token again = %d, want 401", c)
	}

	const later = "created-after-a-failed-attempt-0123"
	if c := get(cached, later); c != 401 {
		t.Fatalf("unknown token = %d", c)
	}
	if _, err := h.store.CreateToken(ctx, store.Token{Name: "later", Hash: hash(later)}); err != nil {
		t.Fatal(err)
	}
	if c := get(cached, later); c != 200 {
		t.Errorf("token created after a failed attempt = %d, want 200 (failures are not cached)", c)
	}
}

func TestPasswords(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	code, _, u := h.call(t, adminSecret, "POST", "/Users", map[string]any{
		"schemas": []string{scim.SchemaUser}, "userName": "pw", "password": "first-Passw0rd"})
	if code != 201 {
		t.Fatalf("create: %d %v", code, u)
	}
	id := u["id"].(string)
	stored := func() string {
		t.Helper()
		su, err := h.store.GetUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if su.Connect == nil {
			return ""
		}
		return su.Connect.PasswordHash
	}
	first := stored()
	if !strings.HasPrefix(first, "$argon2id$") {
		t.Fatalf("stored hash %q", first)
	}
	// A PUT without password keeps the hash; a PATCH of password replaces it.
	if code, _, m := h.call(t, adminSecret, "PUT", "/Users/"+id, map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "pw", "title": "t"}); code != 200 {
		t.Fatalf("PUT: %d %v", code, m)
	}
	if stored() != first {
		t.Error("PUT without password dropped the hash")
	}
	if code, _, m := h.call(t, adminSecret, "PATCH", "/Users/"+id, map[string]any{"schemas": []string{scim.SchemaPatchOp},
		"Operations": []any{map[string]any{"op": "replace", "path": "password", "value": "second-Passw0rd"}}}); code != 200 {
		t.Fatalf("PATCH: %d %v", code, m)
	}
	second := stored()
	if second == first || !strings.HasPrefix(second, "$argon2id$") {
		t.Errorf("hash after PATCH %q (before %q)", second, first)
	}
	asks := "/Users/" + id + "?attributes=" + scim.SchemaConnectUser + ":passwordHash"
	if _, _, m := h.call(t, adminSecret, "GET", asks, nil); strings.Contains(toJSON(m), "argon2") {
		t.Errorf("hash returned with the setting off: %v", m)
	}
	if code, _, m := h.call(t, adminSecret, "GET", "/Users?filter="+urlq(scim.SchemaConnectUser+`:passwordHash pr`), nil); code != 400 {
		t.Errorf("filter on passwordHash with the setting off: %d %v", code, m)
	}
	if err := h.store.SetSetting(ctx, server.SettingSyncPasswordHashes, "true"); err != nil {
		t.Fatal(err)
	}
	if _, _, m := h.call(t, adminSecret, "GET", asks, nil); !strings.Contains(toJSON(m), second) {
		t.Errorf("hash not returned with the setting on: %v", m)
	}
	if _, _, m := h.call(t, adminSecret, "GET", "/Users/"+id, nil); strings.Contains(toJSON(m), "argon2") {
		t.Errorf("hash returned without being asked for: %v", m)
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func urlq(s string) string { return strings.NewReplacer(" ", "%20", `"`, "%22", ":", "%3A").Replace(s) }

// TestMicrosoftQuirks covers requests of Microsoft's SCIM test collection that
// RFC 7644 does not forbid.
func TestMicrosoftQuirks(t *testing.T) {
	h := newHub(t)
	code, _, u := h.call(t, adminSecret, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"ms","active":"True","emails":[{"Primary":true,"type":"work","value":"emailName357"}],
		"addresses":[{"country":null,"type":"other","primary":false}],"roles":[],
		"meta":{"created":"2019-09-18T18:15:26.5788954+00:00","resourceType":"User"},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"Department":"bob","Manager":{"Value":"SuzzyQ"}}}`)
	if code != 201 || u["active"] != true {
		t.Fatalf("create: %d %v", code, u)
	}
	if code, _, m := h.call(t, adminSecret, "GET", "/Users/?filter=DisplayName+eq+%22x%22", nil); code != 200 || m["totalResults"] != 0.0 {
		t.Errorf("/Users/ with trailing slash: %d %v", code, m)
	}
	if _, _, m := h.call(t, adminSecret, "GET", `/Users?attributes=emails%5Btype+eq+%22work%22%5D`, nil); !strings.Contains(toJSON(m), "emailName357") {
		t.Errorf("attributes with a value filter: %v", m)
	}
	if code, _, m := h.call(t, adminSecret, "PUT", "/Users/"+u["id"].(string), map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "ms", "adreses": []any{}}); code != 200 {
		t.Errorf("PUT with an unknown attribute: %d %v", code, m)
	}
}

func TestHTTPDetails(t *testing.T) {
	h := newHub(t)
	_, hdr, _ := h.call(t, adminSecret, "GET", "/Users", nil, "X-Request-Id", "req-123")
	if hdr.Get("X-Request-Id") != "req-123" || !strings.HasPrefix(hdr.Get("Content-Type"), "application/scim+json") {
		t.Errorf("headers = %v", hdr)
	}
	_, hdr, _ = h.call(t, adminSecret, "GET", "/Users", nil, "X-Request-Id", "bad id with spaces")
	if id := hdr.Get("X-Request-Id"); id == "" || strings.Contains(id, "bad") {
		t.Errorf("unsafe request id echoed: %q", id)
	}
	if code, _, m := h.call(t, adminSecret, "DELETE", "/Users", nil); code != 405 || m["status"] != "405" {
		t.Errorf("DELETE /Users = %d %v", code, m)
	}
	if code, _, _ := h.call(t, adminSecret, "GET", "/Users/a/b", nil); code != 404 {
		t.Errorf("GET /Users/a/b = %d", code)
	}
	if code, _, _ := h.call(t, adminSecret, "GET", "/Me", nil); code != 501 {
		t.Errorf("GET /Me = %d", code)
	}
	if code, _, _ := h.call(t, adminSecret, "POST", "/.search", map[string]any{"schemas": []string{scim.SchemaSearchRequest}}); code != 501 {
		t.Errorf("POST /.search = %d", code)
	}
	// A path outside the prefix is not ours.
	req := httptest.NewRequest("GET", "/scim/v22/Users", nil)
	rec := httptest.NewRecorder()
	h.srv.Config.Handler.ServeHTTP(rec, req)
	if rec.Code != 404 {
		t.Errorf("GET /scim/v22/Users = %d", rec.Code)
	}
}

// failingStore fails the way a broken database does, with text that must never
// reach a client.
type failingStore struct{ store.Store }

var errDB = errors.New("sql: SELECT pk FROM users: database disk image is malformed")

func (failingStore) GetUser(context.Context, string) (scim.User, error) { return scim.User{}, errDB }

func TestInternalErrors(t *testing.T) {
	h := newHub(t)
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	handler, err := server.New(server.Config{
		Store:      failingStore{h.store},
		BaseURL:    "https://hub.example",
		Logger:     slog.New(slog.NewJSONHandler(&logs, nil)),
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/scim/v2/Users/abc", nil)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	req.Header.Set("X-Request-Id", "trace-me")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != 500 {
		t.Fatalf("status %d", rec.Code)
	}
	var body map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	want := map[string]any{"schemas": []any{scim.SchemaError}, "status": "500", "detail": "internal server error"}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), "database disk image is malformed") || !strings.Contains(logs.String(), "trace-me") {
		t.Errorf("log lacks the cause or request id: %s", logs.String())
	}
	if strings.Contains(logs.String(), adminSecret) {
		t.Error("log contains the token")
	}
	if n := counter(t, reg, "Users", "GET", "500"); n != 1 {
		t.Errorf("500 counter = %v", n)
	}
}

// counter returns the value of connect_hub_scim_requests_total{resource,method,code}.
func counter(t *testing.T, reg *prometheus.Registry, resource, method, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "connect_hub_scim_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if got["resource"] == resource && got["method"] == method && got["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// series counts the series of a metric family.
func series(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func TestMetrics(t *testing.T) {
	h := newHub(t)
	h.call(t, adminSecret, "GET", "/Users", nil)
	h.call(t, adminSecret, "GET", "/Users", nil)
	h.call(t, "", "GET", "/Groups", nil)
	h.call(t, adminSecret, "GET", "/Users/some-id-not-a-label", nil)
	if n := counter(t, h.reg, "Users", "GET", "200"); n != 2 {
		t.Errorf("Users GET 200 = %v", n)
	}
	if n := counter(t, h.reg, "Groups", "GET", "401"); n != 1 {
		t.Errorf("Groups GET 401 = %v", n)
	}
	if n := counter(t, h.reg, "Users", "GET", "404"); n != 1 {
		t.Errorf("Users GET 404 = %v", n)
	}
	if c := series(t, h.reg, "connect_hub_scim_request_duration_seconds"); c != 2 {
		t.Errorf("duration series = %d, want 2 (Users GET, Groups GET)", c)
	}
}

// TestPasswordHashChecked: a connect passwordHash given over SCIM must be one
// login can verify within the cost limits (DESIGN.md §8); anything else is a
// 400 invalidValue on POST, PUT and PATCH, and nothing is stored.
func TestPasswordHashChecked(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	argon, err := password.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	salt, key := "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"
	bad := map[string]string{
		"plain text":           "hunter2",
		"argon2id garbage":     "$argon2id$broken",
		"argon2i variant":      "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"argon2id 4 GiB":       "$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + key,
		"argon2id 1000 passes": "$argon2id$v=19$m=19456,t=1000,p=1$" + salt + "$" + key,
		"argon2id 255 lanes":   "$argon2id$v=19$m=19456,t=2,p=255$" + salt + "$" + key,
		"bcrypt cost 31":       "$2b$31$" + string(bc[7:]),
		"md5-crypt":            "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/",
	}
	ext := func(hash string) map[string]any { return map[string]any{"passwordHash": hash} }
	user := func(name, hash string) map[string]any {
		return map[string]any{"schemas": []string{scim.SchemaUser, scim.SchemaConnectUser}, "userName": name, scim.SchemaConnectUser: ext(hash)}
	}
	stored := func(id string) string {
		t.Helper()
		u, err := h.store.GetUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if u.Connect == nil {
			return ""
		}
		return u.Connect.PasswordHash
	}
	refused := func(t *testing.T, what, hash string, code int, m map[string]any) {
		t.Helper()
		if code != http.StatusBadRequest || m["scimType"] != scim.ErrTypeInvalidValue {
			t.Fatalf("%s: %d %v, want 400 invalidValue", what, code, m)
		}
		d, _ := m["detail"].(string)
		if !strings.Contains(d, "passwordHash") || (len(hash) > 8 && strings.Contains(d, hash)) {
			t.Errorf("%s: detail %q should name passwordHash and not echo the hash", what, d)
		}
	}

	// Usable hashes are stored as given.
	ids := map[string]string{}
	for name, hash := range map[string]string{"argon": argon, "bcrypt": string(bc), "bcrypt-2y": "$2y$" + string(bc[4:])} {
		code, _, u := h.call(t, adminSecret, "POST", "/Users", user(name, hash))
		if code != http.StatusCreated {
			t.Fatalf("POST with a %s hash: %d %v", name, code, u)
		}
		ids[name] = u["id"].(string)
		if got := stored(ids[name]); got != hash {
			t.Errorf("%s: stored %q, want %q", name, got, hash)
		}
	}
	id := ids["argon"]
	for name, hash := range bad {
		t.Run(name, func(t *testing.T) {
			code, _, m := h.call(t, adminSecret, "POST", "/Users", user("new-"+strings.ReplaceAll(name, " ", "-"), hash))
			refused(t, "POST", hash, code, m)
			if p, err := h.store.ListUsers(ctx, store.Query{Count: 100}); err != nil || p.Total != len(ids) {
				t.Errorf("POST refused but %d users stored (%v), want %d", p.Total, err, len(ids))
			}
			code, _, m = h.call(t, adminSecret, "PUT", "/Users/"+id, user("argon", hash))
			refused(t, "PUT", hash, code, m)
			code, _, m = h.call(t, adminSecret, "PATCH", "/Users/"+id, map[string]any{"schemas": []string{scim.SchemaPatchOp},
				"Operations": []any{map[string]any{"op": "replace", "path": scim.SchemaConnectUser + ":passwordHash", "value": hash}}})
			refused(t, "PATCH path", hash, code, m)
			code, _, m = h.call(t, adminSecret, "PATCH", "/Users/"+id, map[string]any{"schemas": []string{scim.SchemaPatchOp},
				"Operations": []any{map[string]any{"op": "replace", "value": map[string]any{scim.SchemaConnectUser: ext(hash)}}}})
			refused(t, "PATCH value", hash, code, m)
			if got := stored(id); got != argon {
				t.Errorf("after the refusals the stored hash is %q, want the first one", got)
			}
		})
	}

	// A hash stored before this check (here: written past SCIM) does not
	// block unrelated changes, and a valid hash replaces it.
	legacy, err := h.store.CreateUser(ctx, scim.User{UserName: "legacy", Connect: &scim.ConnectUser{PasswordHash: "{SSHA}legacy"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, m := h.call(t, adminSecret, "PATCH", "/Users/"+legacy.ID, map[string]any{"schemas": []string{scim.SchemaPatchOp},
		"Operations": []any{map[string]any{"op": "replace", "path": "title", "value": "t"}}}); code != http.StatusOK {
		t.Errorf("PATCH title of a user with a legacy hash: %d %v", code, m)
	}
	if code, _, m := h.call(t, adminSecret, "PUT", "/Users/"+legacy.ID, map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "legacy", "title": "u"}); code != http.StatusOK {
		t.Errorf("PUT without passwordHash of a user with a legacy hash: %d %v", code, m)
	}
	if code, _, m := h.call(t, adminSecret, "PUT", "/Users/"+legacy.ID, user("legacy", "{SSHA}legacy")); code != http.StatusOK {
		t.Errorf("PUT carrying back the legacy hash it has: %d %v", code, m)
	}
	if code, _, m := h.call(t, adminSecret, "PATCH", "/Users/"+legacy.ID, map[string]any{"schemas": []string{scim.SchemaPatchOp},
		"Operations": []any{map[string]any{"op": "replace", "path": scim.SchemaConnectUser + ":passwordHash", "value": argon}}}); code != http.StatusOK {
		t.Errorf("PATCH a valid hash over a legacy one: %d %v", code, m)
	}
	if got := stored(legacy.ID); got != argon {
		t.Errorf("legacy user's hash %q, want the new one", got)
	}
}
