package rfctest

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
)

// RFC7644_3_12_Errors: every failure is a SCIM error body with the right status
// and scimType and no internal text; authentication failures are 401 with
// WWW-Authenticate, writes with a read-only token 403.
func RFC7644_3_12_Errors(t *testing.T, tg Target) {
	c := newClient(t, tg)
	u := c.create("/Users", c.user("err", nil))
	before := c.snapshot()

	anon := c.as("")
	for _, path := range []string{"/Users", "/Users/" + u["id"].(string), "/Groups", "/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/Changes"} {
		r := anon.do("GET", path, nil)
		c.wantError(r, http.StatusUnauthorized, "", "GET "+path+" without a token")
		if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(strings.ToLower(h), "bearer") {
			t.Errorf("GET %s: WWW-Authenticate %q", path, h)
		}
	}
	c.wantError(c.as("not-a-token-"+c.prefix).do("GET", "/Users", nil), http.StatusUnauthorized, "", "bad token")
	c.wantError(c.do("GET", "/Users", nil, "Authorization", "Basic "+c.tg.Token), http.StatusUnauthorized, "", "wrong scheme")
	c.wantError(anon.do("POST", "/Users", c.user("anon", nil)), http.StatusUnauthorized, "", "POST without a token")

	if tg.ReadOnlyToken != "" {
		ro := c.as(tg.ReadOnlyToken)
		c.want(ro.do("GET", "/Users/"+u["id"].(string), nil), http.StatusOK, "read with a read-only token")
		c.wantError(ro.do("POST", "/Users", c.user("ro", nil)), http.StatusForbidden, "", "POST with a read-only token")
		c.wantError(ro.do("PUT", "/Users/"+u["id"].(string), c.user("err", nil)), http.StatusForbidden, "", "PUT with a read-only token")
		c.wantError(ro.do("PATCH", "/Users/"+u["id"].(string), patchOp(op("replace", "title", "x"))), http.StatusForbidden, "", "PATCH with a read-only token")
		c.wantError(ro.do("DELETE", "/Users/"+u["id"].(string), nil), http.StatusForbidden, "", "DELETE with a read-only token")
	}

	c.wantError(c.do("GET", "/Users/does-not-exist-"+c.prefix, nil), http.StatusNotFound, "", "unknown id")
	c.wantError(c.do("GET", "/NoSuchEndpoint", nil), http.StatusNotFound, "", "unknown endpoint")
	c.wantError(c.do("POST", "/Users", c.user("ERR", nil)), http.StatusConflict, scim.ErrTypeUniqueness, "uniqueness")
	c.wantError(c.do("GET", "/Users?filter="+q(`userName eq "a" and`), nil), http.StatusBadRequest, scim.ErrTypeInvalidFilter, "invalid filter")
	c.wantError(c.do("POST", "/Users", `{"schemas":`), http.StatusBadRequest, scim.ErrTypeInvalidSyntax, "malformed JSON")
	c.wantError(c.do("POST", "/Users", c.user("e2", map[string]any{"active": "perhaps"})), http.StatusBadRequest, scim.ErrTypeInvalidValue, "non-boolean active")
	c.wantError(c.do("POST", "/Users", c.user("e3", map[string]any{"emails": "x@example.com"})), http.StatusBadRequest, "", "emails not an array")
	c.wantError(c.do("PATCH", "/Users/"+u["id"].(string), patchOp(op("replace", "emails[type eq", "x"))), http.StatusBadRequest, scim.ErrTypeInvalidPath, "bad PATCH path")
	c.unchanged(before, "failed requests")
}

// RFC7644_3_14_Versioning: ETags (weak, = meta.version) change with every
// write; If-None-Match answers 304; If-Match with a stale version is 412 on PUT,
// PATCH and DELETE and changes nothing.
func RFC7644_3_14_Versioning(t *testing.T, tg Target) {
	c := newClient(t, tg)
	if obj(c.spc(), "etag")["supported"] != true {
		t.Fatalf("ServiceProviderConfig etag.supported is not true")
	}
	u := c.create("/Users", c.user("ver", map[string]any{"title": "v1"}))
	path := "/Users/" + u["id"].(string)
	r := c.do("GET", path, nil)
	v1 := r.Header.Get("ETag")
	if !strings.HasPrefix(v1, `W/"`) && !strings.HasPrefix(v1, `"`) {
		t.Fatalf("ETag %q is not an entity tag", v1)
	}
	if v1 != obj(r.JSON(), "meta")["version"] {
		t.Errorf("ETag %q, meta.version %v", v1, obj(r.JSON(), "meta")["version"])
	}
	nm := c.do("GET", path, nil, "If-None-Match", v1)
	c.want(nm, http.StatusNotModified, "If-None-Match current")
	if len(nm.Body) != 0 {
		t.Errorf("304 with a body: %s", nm.Body)
	}
	c.want(c.do("GET", path, nil, "If-None-Match", `W/"not-the-version"`), http.StatusOK, "If-None-Match other")

	p := c.do("PATCH", path, patchOp(op("replace", "title", "v2")), "If-Match", v1)
	c.want(p, http.StatusOK, "PATCH If-Match current")
	v2 := p.Header.Get("ETag")
	if v2 == "" || v2 == v1 {
		t.Fatalf("ETag after PATCH %q (before %q)", v2, v1)
	}
	c.want(c.do("GET", path, nil, "If-None-Match", v1), http.StatusOK, "If-None-Match stale")

	before := c.snapshot()
	c.wantError(c.do("PATCH", path, patchOp(op("replace", "title", "lost")), "If-Match", v1), http.StatusPreconditionFailed, "", "PATCH If-Match stale")
	c.wantError(c.do("PUT", path, c.user("ver", map[string]any{"title": "lost"}), "If-Match", v1), http.StatusPreconditionFailed, "", "PUT If-Match stale")
	c.wantError(c.do("DELETE", path, nil, "If-Match", v1), http.StatusPreconditionFailed, "", "DELETE If-Match stale")
	c.unchanged(before, "stale If-Match")
	if got := c.do("GET", path, nil).JSON()["title"]; got != "v2" {
		t.Errorf("title after refused writes = %v", got)
	}

	put := c.do("PUT", path, c.user("ver", map[string]any{"title": "v3"}), "If-Match", v2)
	c.want(put, http.StatusOK, "PUT If-Match current")
	v3 := put.Header.Get("ETag")
	c.want(c.do("PATCH", path, patchOp(op("replace", "title", "v4")), "If-Match", "*"), http.StatusOK, "If-Match *")
	c.wantError(c.do("DELETE", path, nil, "If-Match", v3), http.StatusPreconditionFailed, "", "DELETE after another write")

	g := c.create("/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "vg"})
	gp := "/Groups/" + g["id"].(string)
	gv := c.do("GET", gp, nil).Header.Get("ETag")
	if gv == "" {
		t.Fatal("group GET without ETag")
	}
	c.want(c.do("GET", gp, nil, "If-None-Match", gv), http.StatusNotModified, "group If-None-Match")
	c.want(c.do("PATCH", gp, patchOp(op("replace", "displayName", c.prefix+"vg2")), "If-Match", gv), http.StatusOK, "group PATCH If-Match")
	c.wantError(c.do("PATCH", gp, patchOp(op("replace", "displayName", c.prefix+"vg3")), "If-Match", gv), http.StatusPreconditionFailed, "", "group PATCH stale")
}

// RFC7644_4_Discovery: /ServiceProviderConfig, /ResourceTypes and /Schemas
// describe what the server does (RFC 7644 §4, RFC 7643 §5–7).
func RFC7644_4_Discovery(t *testing.T, tg Target) {
	c := newClient(t, tg)
	spc := c.spc()
	if !hasString(spc["schemas"], scim.SchemaServiceProvider) || obj(spc, "patch")["supported"] != true || obj(spc, "filter")["supported"] != true || obj(spc, "sort")["supported"] != true {
		t.Errorf("ServiceProviderConfig = %v", spc)
	}
	rts := c.do("GET", "/ResourceTypes", nil)
	c.want(rts, http.StatusOK, "GET /ResourceTypes")
	byName := map[string]map[string]any{}
	for _, r := range resources(rts.JSON()) {
		byName[r["name"].(string)] = r
	}
	if byName["User"]["endpoint"] != "/Users" || byName["Group"]["endpoint"] != "/Groups" || byName["User"]["schema"] != scim.SchemaUser {
		t.Errorf("ResourceTypes = %s", trim(rts.Body))
	}
	if num(rts.JSON()["itemsPerPage"]) != len(resources(rts.JSON())) {
		t.Errorf("ResourceTypes itemsPerPage %v for %d resources", rts.JSON()["itemsPerPage"], len(resources(rts.JSON())))
	}
	c.want(c.do("GET", "/ResourceTypes/User", nil), http.StatusOK, "GET /ResourceTypes/User")
	sc := c.do("GET", "/Schemas", nil)
	c.want(sc, http.StatusOK, "GET /Schemas")
	found := map[string]bool{}
	for _, s := range resources(sc.JSON()) {
		found[s["id"].(string)] = true
	}
	for _, id := range []string{scim.SchemaUser, scim.SchemaGroup, scim.SchemaEnterpriseUser} {
		if !found[id] {
			t.Errorf("/Schemas lacks %s", id)
		}
	}
	us := c.do("GET", "/Schemas/"+scim.SchemaUser, nil)
	c.want(us, http.StatusOK, "GET /Schemas/User")
	attrs, _ := us.JSON()["attributes"].([]any)
	var userName, password map[string]any
	for _, a := range attrs {
		am := a.(map[string]any)
		switch am["name"] {
		case "userName":
			userName = am
		case "password":
			password = am
		}
	}
	if userName == nil || userName["required"] != true || userName["uniqueness"] != "server" {
		t.Errorf("userName schema = %v", userName)
	}
	if password == nil || password["returned"] != "never" || password["mutability"] != "writeOnly" {
		t.Errorf("password schema = %v", password)
	}
	c.wantError(c.do("GET", "/Schemas/urn:nope", nil), http.StatusNotFound, "", "unknown schema")
}

// RFC9865_Cursor: cursor pagination — "cursor" with no value starts, each page
// carries nextCursor until the last; every match is seen exactly once; a bad
// cursor is 400 invalidCursor.
func RFC9865_Cursor(t *testing.T, tg Target) {
	c := newClient(t, tg)
	if pg := obj(c.spc(), "pagination"); pg == nil || pg["cursor"] != true {
		t.Skip("service provider does not advertise cursor pagination")
	}
	p := seed(c)
	seen := map[string]int{}
	next := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("cursor paging does not end")
		}
		r := c.do("GET", "/Users?count=2&cursor="+q(next)+"&filter="+q(p.scope("")), nil)
		c.want(r, http.StatusOK, "cursor page")
		m := r.JSON()
		for _, id := range ids(m) {
			seen[id]++
		}
		if num(m["itemsPerPage"]) != len(ids(m)) || num(m["totalResults"]) != 5 {
			t.Errorf("page %d: itemsPerPage %v totalResults %v for %d resources", pages, m["itemsPerPage"], m["totalResults"], len(ids(m)))
		}
		nc, _ := m["nextCursor"].(string)
		if nc == "" {
			if pages != 2 {
				t.Errorf("%d pages of 2 for 5 users, want 3", pages+1)
			}
			break
		}
		next = nc
	}
	if len(seen) != 5 {
		t.Errorf("saw %d users, want 5", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("user %s seen %d times", id, n)
		}
	}
	sr := c.do("POST", "/Users/.search", map[string]any{"schemas": []string{scim.SchemaSearchRequest}, "cursor": "", "count": 3, "filter": p.scope("")})
	c.want(sr, http.StatusOK, "cursor search")
	if len(ids(sr.JSON())) != 3 || sr.JSON()["nextCursor"] == nil {
		t.Errorf("cursor search = %s", trim(sr.Body))
	}
	c.wantError(c.do("GET", "/Users?count=2&cursor="+q("not a cursor!")+"&filter="+q(p.scope("")), nil), http.StatusBadRequest, scim.ErrTypeInvalidCursor, "bad cursor")
}

// Changes: the Connect Changes feed (DESIGN.md §3.1) — no cursor gives the
// head; writes after it appear in order with the resource for upserts; a
// long-poll returns as soon as something changes; bad cursors are refused.
func Changes(t *testing.T, tg Target) {
	c := newClient(t, tg)
	r := c.do("GET", "/Changes", nil)
	if r.Status == http.StatusNotFound {
		t.Skip("no Changes feed")
	}
	c.want(r, http.StatusOK, "GET /Changes")
	head, _ := r.JSON()["nextCursor"].(string)
	if head == "" || len(ids(r.JSON())) != 0 {
		t.Fatalf("GET /Changes without cursor = %s", trim(r.Body))
	}
	u := c.create("/Users", c.user("chg", map[string]any{"password": "s3cret-Passw0rd"}))
	id := u["id"].(string)
	c.want(c.do("PATCH", "/Users/"+id, patchOp(op("replace", "title", "changed"))), http.StatusOK, "PATCH")
	c.want(c.do("DELETE", "/Users/"+id, nil), http.StatusNoContent, "DELETE")

	var recs []map[string]any
	cursor := head
	for i := 0; i < 20; i++ {
		r := c.do("GET", "/Changes?count=2&cursor="+q(cursor), nil)
		c.want(r, http.StatusOK, "GET /Changes?cursor")
		page := resources(r.JSON())
		if num(r.JSON()["itemsPerPage"]) != len(page) || len(page) > 2 {
			t.Fatalf("page of %d with itemsPerPage %v", len(page), r.JSON()["itemsPerPage"])
		}
		nc, _ := r.JSON()["nextCursor"].(string)
		if nc == "" {
			t.Fatal("Changes page without nextCursor")
		}
		if len(page) == 0 {
			if nc != cursor {
				t.Errorf("empty page moved the cursor %s -> %s", cursor, nc)
			}
			break
		}
		recs = append(recs, page...)
		cursor = nc
	}
	var mine []map[string]any
	lastSeq := 0.0
	for _, rec := range recs {
		if s, _ := rec["seq"].(float64); s <= lastSeq {
			t.Errorf("seq %v after %v", rec["seq"], lastSeq)
		} else {
			lastSeq = s
		}
		if rec["id"] == id {
			mine = append(mine, rec)
		}
	}
	if len(mine) < 2 {
		t.Fatalf("changes for the user = %v", mine)
	}
	last := mine[len(mine)-1]
	if last["op"] != scim.ChangeRemove || last["resourceType"] != "User" {
		t.Errorf("last change = %v, want a User remove", last)
	}
	for _, rec := range mine {
		if rec["op"] == scim.ChangeUpsert && rec["resource"] != nil && !tg.HashesVisible {
			if strings.Contains(strings.ToLower(strings.Join(mapKeys(obj(rec, "resource")), ",")), "password") {
				t.Errorf("change record carries a password: %v", rec)
			}
		}
		if !hasString(rec["schemas"], scim.SchemaChange) {
			t.Errorf("change schemas = %v", rec["schemas"])
		}
	}

	t.Run("resource of an upsert", func(t *testing.T) {
		c := c.on(t)
		u := c.create("/Users", c.user("chg2", map[string]any{"title": "t"}))
		r := c.do("GET", "/Changes?cursor="+q(cursor), nil)
		c.want(r, http.StatusOK, "GET /Changes")
		var rec map[string]any
		for _, x := range resources(r.JSON()) {
			if x["id"] == u["id"] {
				rec = x
			}
		}
		if rec == nil || rec["op"] != scim.ChangeUpsert || obj(rec, "resource")["userName"] != c.prefix+"chg2" {
			t.Errorf("upsert record = %v", rec)
		}
		cursor, _ = r.JSON()["nextCursor"].(string)
	})

	t.Run("long poll", func(t *testing.T) {
		c := c.on(t)
		done := make(chan *resp, 1)
		start := time.Now()
		go func() {
			r, err := c.send("GET", "/Changes?wait=10&cursor="+q(cursor), nil)
			if err != nil {
				r = &resp{Body: []byte(err.Error())}
			}
			done <- r
		}()
		time.Sleep(300 * time.Millisecond)
		created := c.create("/Users", c.user("chg3", nil))
		var r *resp
		select {
		case r = <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("long poll did not return")
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("long poll returned after %v, want soon after the change", took)
		}
		c.want(r, http.StatusOK, "long poll")
		if !strings.Contains(string(r.Body), created["id"].(string)) {
			t.Errorf("long poll result lacks the new user: %s", trim(r.Body))
		}
		idle := c.do("GET", "/Changes?wait=1&cursor="+q(r.JSON()["nextCursor"].(string)+""), nil)
		c.want(idle, http.StatusOK, "idle long poll")
		if idle.took < 800*time.Millisecond && len(ids(idle.JSON())) == 0 {
			t.Errorf("idle long poll returned after %v", idle.took)
		}
	})

	t.Run("bad cursors", func(t *testing.T) {
		c := c.on(t)
		c.wantError(c.do("GET", "/Changes?cursor=banana", nil), http.StatusBadRequest, scim.ErrTypeInvalidCursor, "non-numeric cursor")
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil {
			t.Skip("cursor is opaque")
		}
		c.wantError(c.do("GET", "/Changes?cursor="+strconv.FormatInt(n+1_000_000, 10), nil), http.StatusGone, scim.ErrTypeExpiredCursor, "cursor from the future")
	})
}

func mapKeys(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k)
		if o, ok := v.(map[string]any); ok {
			out = append(out, mapKeys(o)...)
		}
	}
	return out
}
