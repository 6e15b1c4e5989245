// Package rfctest is an RFC-organised SCIM 2.0 conformance suite (RFC 7644 §3.3
// create through §3.14 versioning, RFC 9865 cursors, the Connect Changes feed
// and hostile input) that runs over HTTP against any running service provider:
// it needs a base URL and a bearer token, nothing else.
//
// Every function named after an RFC section is a self-contained test; Run runs
// them all. Resources the suite creates carry a random prefix, so it works
// against a hub that already holds data, and are deleted afterwards.
//
// It imports the standard library and package scim (URNs) only.
package rfctest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
)

// Target is a running SCIM service provider.
type Target struct {
	// BaseURL is the SCIM base, e.g. "http://127.0.0.1:8080/scim/v2".
	BaseURL string
	// Token is a read-write bearer token.
	Token string
	// ReadOnlyToken, when set, is a read-only token (403 on writes).
	ReadOnlyToken string
	// Client sends the requests (default: a client with a 60 s timeout).
	Client *http.Client
	// Snapshot, when set, returns a comparable picture of everything stored (for
	// a Connect hub: store.Stats and JournalHead). Bad-input tests assert it is
	// unchanged. When nil the suite compares what it can see over HTTP: user and
	// group totals and the head of the Changes feed when one is served.
	Snapshot func(tb testing.TB) any
	// HashesVisible says the hub setting sync-password-hashes is on for Token;
	// by default the suite asserts passwordHash is never returned.
	HashesVisible bool
}

// Run runs the whole suite against tg.
func Run(t *testing.T, tg Target) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Target)
	}{
		{"RFC7644_3_3_Create", RFC7644_3_3_Create},
		{"RFC7644_3_4_1_Get", RFC7644_3_4_1_Get},
		{"RFC7644_3_4_2_Query", RFC7644_3_4_2_Query},
		{"RFC7644_3_4_2_5_Attributes", RFC7644_3_4_2_5_Attributes},
		{"RFC7644_3_4_3_Search", RFC7644_3_4_3_Search},
		{"RFC7644_3_5_1_Put", RFC7644_3_5_1_Put},
		{"RFC7644_3_5_2_Patch", RFC7644_3_5_2_Patch},
		{"RFC7644_3_6_Delete", RFC7644_3_6_Delete},
		{"RFC7644_3_7_Bulk", RFC7644_3_7_Bulk},
		{"RFC7644_3_9_WriteProjection", RFC7644_3_9_WriteProjection},
		{"RFC7644_3_11_Me", RFC7644_3_11_Me},
		{"RFC7644_3_12_Errors", RFC7644_3_12_Errors},
		{"RFC7644_3_14_Versioning", RFC7644_3_14_Versioning},
		{"RFC7644_4_Discovery", RFC7644_4_Discovery},
		{"RFC9865_Cursor", RFC9865_Cursor},
		{"Changes", Changes},
		{"BadInput", BadInput},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, tg) })
	}
}

// client is the suite's HTTP helper bound to one test.
type client struct {
	t     testing.TB
	tg    Target
	token string
	// prefix makes this test's resource names unique.
	prefix string
	// cleanup holds resource paths to delete at the end (shared by copies).
	cleanup *[]string
}

func newClient(t testing.TB, tg Target) *client {
	t.Helper()
	if tg.BaseURL == "" || tg.Token == "" {
		t.Fatal("rfctest: Target needs BaseURL and Token")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &client{t: t, tg: tg, token: tg.Token, prefix: "rfc" + hex.EncodeToString(b[:]) + "-", cleanup: new([]string)}
	t.Cleanup(func() {
		c := c.on(t)
		list := *c.cleanup
		for i := len(list) - 1; i >= 0; i-- {
			r := c.do("DELETE", list[i], nil)
			if r.Status != http.StatusNoContent && r.Status != http.StatusNotFound {
				t.Errorf("cleanup DELETE %s: %d %s", list[i], r.Status, r.Body)
			}
		}
	})
	return c
}

// on returns a copy of c reporting to t (a subtest); resources it creates are
// still cleaned up with c's.
func (c *client) on(t testing.TB) *client {
	cp := *c
	cp.t = t
	return &cp
}

// as returns a copy of c using another token.
func (c *client) as(token string) *client {
	cp := *c
	cp.token = token
	return &cp
}

// resp is one HTTP response.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
	obj    map[string]any
	took   time.Duration
}

// JSON returns the body as an object (nil when it is not one).
func (r *resp) JSON() map[string]any {
	if r.obj == nil && len(r.Body) > 0 {
		_ = json.Unmarshal(r.Body, &r.obj)
	}
	return r.obj
}

// do sends a request. body is nil, a string or []byte (sent as is) or any value
// (JSON-encoded). hdr are header name/value pairs. Transport errors fail the test.
func (c *client) do(method, path string, body any, hdr ...string) *resp {
	c.t.Helper()
	r, err := c.send(method, path, body, hdr...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// send is do without a test: safe to call from any goroutine.
func (c *client) send(method, path string, body any, hdr ...string) (*resp, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(raw)
	}
	u := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		u = strings.TrimRight(c.tg.BaseURL, "/") + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	req.Header.Set("Accept", "application/scim+json")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	hc := c.tg.Client
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	start := time.Now()
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return &resp{Status: res.StatusCode, Header: res.Header, Body: raw, took: time.Since(start)}, nil
}

// want fails the test unless r has status.
func (c *client) want(r *resp, status int, what string) {
	c.t.Helper()
	if r.Status != status {
		c.t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, status, trim(r.Body))
	}
}

// wantError checks a SCIM error response (RFC 7644 §3.12): status, the Error
// schema, the status repeated as a string and, when given, the scimType.
func (c *client) wantError(r *resp, status int, scimType, what string) {
	c.t.Helper()
	if r.Status != status {
		c.t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, status, trim(r.Body))
	}
	if status == http.StatusNotModified {
		return
	}
	m := r.JSON()
	if m == nil {
		c.t.Fatalf("%s: error body is not JSON: %s", what, trim(r.Body))
	}
	if !hasString(m["schemas"], scim.SchemaError) {
		c.t.Errorf("%s: error schemas = %v, want %s", what, m["schemas"], scim.SchemaError)
	}
	if got := fmt.Sprint(m["status"]); got != fmt.Sprint(status) {
		c.t.Errorf("%s: error status %q, want %q", what, got, fmt.Sprint(status))
	}
	if scimType != "" && m["scimType"] != scimType {
		c.t.Errorf("%s: scimType %v, want %s (body %s)", what, m["scimType"], scimType, trim(r.Body))
	}
	detail := strings.ToLower(fmt.Sprint(m["detail"]))
	for _, leak := range []string{"sql", "select ", "goroutine", ".go:", "panic", "constraint"} {
		if strings.Contains(detail, leak) {
			c.t.Errorf("%s: error detail leaks internals (%q): %s", what, leak, detail)
		}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
		c.t.Errorf("%s: Content-Type %q, want application/scim+json", what, ct)
	}
}

func trim(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

func hasString(v any, s string) bool {
	list, _ := v.([]any)
	for _, x := range list {
		if str, ok := x.(string); ok && strings.EqualFold(str, s) {
			return true
		}
	}
	return false
}

// create POSTs a resource, expects 201 and schedules its deletion.
func (c *client) create(endpoint string, body any) map[string]any {
	c.t.Helper()
	r := c.do("POST", endpoint, body)
	c.want(r, http.StatusCreated, "POST "+endpoint)
	m := r.JSON()
	id, _ := m["id"].(string)
	if id == "" {
		c.t.Fatalf("POST %s: no id in %s", endpoint, trim(r.Body))
	}
	*c.cleanup = append(*c.cleanup, endpoint+"/"+id)
	return m
}

// user builds a user body with the test prefix.
func (c *client) user(name string, extra map[string]any) map[string]any {
	u := map[string]any{
		"schemas":  []string{scim.SchemaUser},
		"userName": c.prefix + name,
	}
	for k, v := range extra {
		u[k] = v
	}
	return u
}

// ids returns the ids of a list response's resources, in order.
func ids(m map[string]any) []string {
	var out []string
	list, _ := m["Resources"].([]any)
	for _, r := range list {
		if o, ok := r.(map[string]any); ok {
			out = append(out, fmt.Sprint(o["id"]))
		}
	}
	return out
}

func resources(m map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := m["Resources"].([]any)
	for _, r := range list {
		if o, ok := r.(map[string]any); ok {
			out = append(out, o)
		}
	}
	return out
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

func sameSet(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return reflect.DeepEqual(a, b) || (len(a) == 0 && len(b) == 0)
}

func q(s string) string { return url.QueryEscape(s) }

// snapshot captures what bad input must not change.
func (c *client) snapshot() any {
	c.t.Helper()
	if c.tg.Snapshot != nil {
		return c.tg.Snapshot(c.t)
	}
	snap := map[string]any{}
	for _, ep := range []string{"/Users", "/Groups"} {
		r := c.do("GET", ep+"?count=0", nil)
		c.want(r, http.StatusOK, "GET "+ep+"?count=0")
		snap[ep] = r.JSON()["totalResults"]
	}
	if r := c.do("GET", "/Changes", nil); r.Status == http.StatusOK {
		snap["changes"] = r.JSON()["nextCursor"]
	}
	return snap
}

// unchanged fails when the snapshot moved.
func (c *client) unchanged(before any, what string) {
	c.t.Helper()
	if after := c.snapshot(); !reflect.DeepEqual(before, after) {
		c.t.Errorf("%s changed the directory: before %v, after %v", what, before, after)
	}
}

// spc returns the ServiceProviderConfig.
func (c *client) spc() map[string]any {
	c.t.Helper()
	r := c.do("GET", "/ServiceProviderConfig", nil)
	c.want(r, http.StatusOK, "GET /ServiceProviderConfig")
	return r.JSON()
}

func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// memberIDs returns the values of a group's members.
func memberIDs(g map[string]any) []string {
	var out []string
	list, _ := g["members"].([]any)
	for _, m := range list {
		if o, ok := m.(map[string]any); ok {
			out = append(out, fmt.Sprint(o["value"]))
		}
	}
	return out
}
