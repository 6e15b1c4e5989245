package scimtarget_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/scimtarget"
	"github.com/connectsso/connect/internal/testenv/hubproc"
	"github.com/connectsso/connect/scim"
)

// siteProxy stands in front of a real hub and records the user writes; with
// noPatch it plays a site application without PATCH: its
// ServiceProviderConfig says so and a PATCH of a user gets 501.
type siteProxy struct {
	noPatch bool
	// noFilters, when set, plays a target without value-path filters: a PATCH
	// with a filtered path gets 400 with this scimType.
	noFilters string
	mu        sync.Mutex
	writes    []siteWrite
	// before, when set, runs before a user write is forwarded (the site
	// application changing the user at the same moment).
	before func(r *http.Request)
}

type siteWrite struct {
	method, path, ifMatch string
	body                  []byte
}

func (w siteWrite) String() string {
	return w.method + " " + w.path + " If-Match=" + w.ifMatch + " " + string(w.body)
}

func newSiteProxy(t testing.TB, target string, noPatch bool) (*siteProxy, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &siteProxy{noPatch: noPatch}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	rp.ModifyResponse = func(resp *http.Response) error {
		if !p.noPatch || !strings.HasSuffix(resp.Request.URL.Path, "/ServiceProviderConfig") {
			return nil
		}
		var spc map[string]any
		body, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(body, &spc); err != nil {
			return err
		}
		spc["patch"] = map[string]any{"supported": false}
		body, _ = json.Marshal(spc)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && strings.Contains(r.URL.Path, "/Users") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			p.mu.Lock()
			p.writes = append(p.writes, siteWrite{method: r.Method, path: r.URL.Path, ifMatch: r.Header.Get("If-Match"), body: body})
			before := p.before
			p.before = nil
			p.mu.Unlock()
			if before != nil {
				before(r)
			}
			if p.noPatch && r.Method == http.MethodPatch {
				w.WriteHeader(http.StatusNotImplemented)
				return
			}
			if p.noFilters != "" && r.Method == http.MethodPatch && hasFilter(body) {
				w.Header().Set("Content-Type", "application/scim+json")
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(scim.ErrorResponse{Schemas: []string{scim.SchemaError}, ScimType: p.noFilters, Status: "400"})
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL + u.Path
}

// hasFilter reports whether a PATCH body has a path with a value filter.
func hasFilter(body []byte) bool {
	var b struct{ Operations []struct{ Path string } }
	_ = json.Unmarshal(body, &b)
	for _, o := range b.Operations {
		if strings.Contains(o.Path, "[") {
			return true
		}
	}
	return false
}

func (p *siteProxy) take() []siteWrite {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.writes
	p.writes = nil
	return w
}

// synced is the mask of the fields the bridge syncs by default (DESIGN.md §3)
// plus the department, so the enterprise extension is written beside the
// site's own enterprise values.
const synced = local.FieldEmail | local.FieldGivenName | local.FieldFamilyName | local.FieldDisplayName |
	local.FieldLanguage | local.FieldTimezone | local.FieldCity | local.FieldCountry | local.FieldPhone |
	local.FieldSuspended | local.FieldDepartment

// TestSiteValuesKept: the site application keeps what Connect does not sync.
// A connect account gets the site's own values — more emails, phones and
// addresses, street and postcode of the synced address, nickName, roles,
// entitlements, enterprise division/costCenter/manager/organization, its own
// custom field — and the bridge then changes the synced fields. Every site
// value is still there afterwards, by PATCH, by a merge and PUT (If-Match) on
// a target without PATCH, and by a merge for an address no PATCH path can name.
func TestSiteValuesKept(t *testing.T) {
	base, token := startHub(t)
	for _, tt := range []struct {
		name    string
		cfg     scimtarget.Config
		noPatch bool
		// twoHomes: the site's only addresses are two of type home, so the one
		// read (the first) has no PATCH path and the update is merged.
		twoHomes bool
		want     string // the method of the update
	}{
		{"patch, connect extension", scimtarget.Config{Extension: true, Metadata: true, PasswordHashes: true}, false, false, http.MethodPatch},
		{"patch, plain SCIM", scimtarget.Config{}, false, false, http.MethodPatch},
		{"no patch: merge and PUT", scimtarget.Config{Extension: true, Metadata: true, PasswordHashes: true}, true, false, http.MethodPut},
		{"no patch, plain SCIM", scimtarget.Config{}, true, false, http.MethodPut},
		{"address without a path: merge", scimtarget.Config{Extension: true, Metadata: true}, false, true, http.MethodPut},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			proxy, purl := newSiteProxy(t, base, tt.noPatch)
			cfg := tt.cfg
			cfg.BaseURL, cfg.Token = purl, token
			tg := newTarget(t, cfg)
			hub := "h-" + strings.NewReplacer(" ", "-", ",", "", ":", "").Replace(tt.name)

			// The manager is another site user.
			var mgr scim.User
			must(t, hubproc.Request(http.MethodPost, base+"/Users", token, scim.User{Schemas: []string{scim.SchemaUser}, UserName: "mgr-" + hub}, &mgr, http.StatusCreated))

			acct := local.Account{Username: "tc-" + hub, Auth: local.AuthConnect, Server: "hub-1", HubUserID: hub,
				Email: "work@" + hub + ".example", GivenName: "Ann", FamilyName: "Lee", Phone: "+64 4 000 0100",
				City: "Wellington", Country: "NZ", Department: "Sales", Language: "en", PasswordHash: "$2b$04$abcdefghijklmnopqrstuu5mSb1pVlQ3K0y9bYVb4bS9iQrV0x2Ne"}
			if !tt.cfg.PasswordHashes {
				acct.PasswordHash = ""
			}
			// The hub's custom fields; the site adds its own beside them.
			acct.CustomFields = []local.CustomField{{Name: "house", Value: "Red"}, {Name: "year", Value: "9"}}
			mask := synced
			if tt.cfg.Extension {
				mask |= local.FieldCustomFields
			}
			created, _, err := local.PutAccount(ctx, tg, local.Put{Account: acct})
			if err != nil {
				t.Fatal(err)
			}
			// The site application adds its own values.
			var site map[string]any
			must(t, hubproc.Request(http.MethodGet, base+"/Users/"+created.ID, token, nil, &site, http.StatusOK))
			site["nickName"] = "Annie"
			site["emails"] = []any{
				map[string]any{"value": acct.Email, "type": "work", "primary": true},
				map[string]any{"value": "ann@home.example", "type": "home"},
			}
			site["phoneNumbers"] = []any{
				map[string]any{"value": acct.Phone, "type": "work", "primary": true},
				map[string]any{"value": "+64 21 000 0199", "type": "mobile"},
			}
			site["addresses"] = []any{
				map[string]any{"type": "work", "locality": "Wellington", "country": "NZ", "streetAddress": "1 Site Street", "postalCode": "6011", "primary": true},
				map[string]any{"type": "home", "locality": "Petone", "country": "NZ"},
			}
			if tt.twoHomes {
				site["addresses"] = []any{
					map[string]any{"type": "home", "locality": "Wellington", "country": "NZ", "streetAddress": "1 Site Street"},
					map[string]any{"type": "home", "locality": "Petone", "country": "NZ"},
				}
			}
			site["roles"] = []any{map[string]any{"value": "teacher"}}
			site["entitlements"] = []any{map[string]any{"value": "library"}}
			site[scim.SchemaEnterpriseUser] = map[string]any{"department": "Sales", "division": "North", "costCenter": "CC-7",
				"organization": "Site Org", "manager": map[string]any{"value": mgr.ID}}
			con, _ := site[scim.SchemaConnectUser].(map[string]any)
			if con == nil {
				con = map[string]any{}
			}
			fields, _ := con["customFields"].([]any)
			con["customFields"] = append(fields, map[string]any{"name": "shoe-size", "value": "42"})
			site[scim.SchemaConnectUser] = con
			site["schemas"] = []any{scim.SchemaUser, scim.SchemaEnterpriseUser, scim.SchemaConnectUser}
			delete(site, "meta")
			must(t, hubproc.Request(http.MethodPut, base+"/Users/"+created.ID, token, site, nil, http.StatusOK))
			before := siteUser(t, base, token, created.ID)
			proxy.take()

			// The bridge changes the synced fields.
			upd := acct
			upd.ID = created.ID
			upd.Email, upd.Phone, upd.City, upd.GivenName, upd.Department = "new@"+hub+".example", "+64 4 000 0111", "Auckland", "Anna", "Support"
			upd.Suspended, upd.SuspendedBy = true, local.SuspendedByConnect
			// The hub changes one of its fields, adds one and keeps one; the
			// site's shoe-size is not in its list and stays.
			upd.CustomFields = []local.CustomField{{Name: "house", Value: "Blue"}, {Name: "year", Value: "9"}, {Name: "club", Value: "chess"}}
			r, op, err := local.PutAccount(ctx, tg, local.Put{Account: upd, Fields: mask})
			if err != nil || op != local.OpUpdated {
				t.Fatalf("update: %s %v", op, err)
			}
			writes := proxy.take()
			var methods []string
			for _, w := range writes {
				methods = append(methods, w.method)
			}
			if got := methods[len(methods)-1]; got != tt.want {
				t.Fatalf("update sent %v, want it to end with %s", methods, tt.want)
			}
			for _, w := range writes {
				if w.method == http.MethodPut && w.ifMatch == "" {
					t.Errorf("a PUT without If-Match: the target has ETags")
				}
				if w.method == http.MethodPut && bytes.Contains(w.body, []byte(`"groups"`)) {
					t.Errorf("a PUT carries the read-only groups: %s", w.body)
				}
			}

			after := siteUser(t, base, token, created.ID)
			// What the bridge synced changed.
			want := before
			want.Emails = []scim.MultiValue{{Value: upd.Email, Type: "work", Primary: true}, {Value: "ann@home.example", Type: "home"}}
			want.PhoneNumbers = []scim.MultiValue{{Value: upd.Phone, Type: "work", Primary: true}, {Value: "+64 21 000 0199", Type: "mobile"}}
			want.Addresses[0].Locality = "Auckland"
			want.Name.GivenName = "Anna"
			want.Enterprise.Department = "Support"
			want.Active = scim.BoolPtr(false)
			if tt.cfg.Extension {
				want.Connect.CustomFields = []scim.CustomField{{Name: "house", Value: "Blue"}, {Name: "year", Value: "9"},
					{Name: "shoe-size", Value: "42"}, {Name: "club", Value: "chess"}}
			}
			if tt.cfg.Metadata {
				want.Connect.CustomFields = append(want.Connect.CustomFields,
					scim.CustomField{Name: "connect:suspended", Value: "1"}, scim.CustomField{Name: "connect:suspendedBy", Value: "connect"})
			}
			opts := cmp.Options{cmp.FilterPath(func(p cmp.Path) bool {
				s := p.String()
				return s == "Meta" || s == "Schemas"
			}, cmp.Ignore())}
			if diff := cmp.Diff(want, after, opts); diff != "" {
				t.Fatalf("site user after the update (-want +got):\n%s", diff)
			}
			// The account reads back as written, and a repeat changes nothing.
			got, err := tg.Account(ctx, created.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Email != upd.Email || got.Phone != upd.Phone || got.City != "Auckland" || got.Country != "NZ" ||
				got.GivenName != "Anna" || got.Department != "Support" || got.Organization != "Site Org" || !got.Suspended {
				t.Fatalf("account read back: %+v", got)
			}
			if r.Email != upd.Email {
				t.Fatalf("put result %+v", r)
			}
			if tt.cfg.Extension {
				wantFields := []local.CustomField{{Name: "house", Value: "Blue"}, {Name: "year", Value: "9"},
					{Name: "shoe-size", Value: "42"}, {Name: "club", Value: "chess"}}
				if diff := cmp.Diff(wantFields, got.CustomFields); diff != "" {
					t.Fatalf("custom fields read back (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(wantFields, r.CustomFields); diff != "" {
					t.Fatalf("custom fields of the put result (-want +got):\n%s", diff)
				}
			}
			if _, op, err := local.PutAccount(ctx, tg, local.Put{Account: upd, Fields: mask}); err != nil || op != local.OpUnchanged {
				t.Fatalf("repeat: %s %v", op, err)
			}
			for _, w := range proxy.take() {
				t.Fatalf("a repeat wrote: %s %s", w.method, w.path)
			}
		})
	}
}

// TestPatchPaths: the PATCH names only the synced values that changed, by
// value-path filters, never a whole multi-valued attribute the site shares.
func TestPatchPaths(t *testing.T) {
	base, token := startHub(t)
	proxy, purl := newSiteProxy(t, base, false)
	tg := newTarget(t, scimtarget.Config{BaseURL: purl, Token: token, Extension: true, Metadata: true})
	ctx := context.Background()
	a := local.Account{Username: "tc-paths", Auth: local.AuthConnect, Server: "hub-1", HubUserID: "paths",
		Email: "old@example.com", Phone: "+1 555 0100", City: "Old", Country: "NZ"}
	created, _, err := local.PutAccount(ctx, tg, local.Put{Account: a})
	if err != nil {
		t.Fatal(err)
	}
	proxy.take()
	a.ID, a.Email, a.City = created.ID, "new@example.com", "New"
	a.Suspended, a.SuspendedBy = true, local.SuspendedByConnect
	if _, _, err := local.PutAccount(ctx, tg, local.Put{Account: a, Fields: synced}); err != nil {
		t.Fatal(err)
	}
	writes := proxy.take()
	if len(writes) != 1 || writes[0].method != http.MethodPatch {
		t.Fatalf("writes %+v, want one PATCH", writes)
	}
	if writes[0].ifMatch == "" {
		t.Error("PATCH without If-Match: the target has ETags")
	}
	var body struct {
		Operations []struct {
			Op, Path string
			Value    any
		}
	}
	if err := json.Unmarshal(writes[0].body, &body); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range body.Operations {
		v, _ := json.Marshal(o.Value)
		got = append(got, o.Op+" "+o.Path+" "+string(v))
	}
	con := scim.SchemaConnectUser
	want := []string{
		`replace emails[value eq "old@example.com"].value "new@example.com"`,
		`replace addresses[type eq "work"].locality "New"`,
		`replace active false`,
		`add ` + con + `:customFields [{"name":"connect:suspended","value":"1"},{"name":"connect:suspendedBy","value":"connect"}]`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("PATCH operations (-want +got):\n%s", diff)
	}
	// Unsuspended: the metadata fields are removed by name.
	a.Suspended, a.SuspendedBy = false, ""
	if _, _, err := local.PutAccount(ctx, tg, local.Put{Account: a, Fields: synced}); err != nil {
		t.Fatal(err)
	}
	writes = proxy.take()
	body.Operations = nil
	if len(writes) != 1 || json.Unmarshal(writes[0].body, &body) != nil {
		t.Fatalf("writes %+v", writes)
	}
	got = nil
	for _, o := range body.Operations {
		got = append(got, o.Op+" "+o.Path)
	}
	want = []string{"replace active", `remove ` + con + `:customFields[name eq "connect:suspended"]`, `remove ` + con + `:customFields[name eq "connect:suspendedBy"]`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("PATCH operations (-want +got):\n%s", diff)
	}
}

func siteUser(t testing.TB, base, token, id string) scim.User {
	t.Helper()
	var u scim.User
	must(t, hubproc.Request(http.MethodGet, base+"/Users/"+id+"?excludedAttributes=groups", token, nil, &u, http.StatusOK))
	return u
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSiteChangeDuringUpdate: the site application changes the user between the
// bridge's read and its write. The write's If-Match fails (412), the bridge
// reads the user again and writes once more: both the site's change and the
// synced one are kept, by PATCH and by merge.
func TestSiteChangeDuringUpdate(t *testing.T) {
	base, token := startHub(t)
	for _, noPatch := range []bool{false, true} {
		t.Run(map[bool]string{false: "patch", true: "merge"}[noPatch], func(t *testing.T) {
			ctx := context.Background()
			proxy, purl := newSiteProxy(t, base, noPatch)
			tg := newTarget(t, scimtarget.Config{BaseURL: purl, Token: token, Extension: true, Metadata: true})
			hub := map[bool]string{false: "race-patch", true: "race-merge"}[noPatch]
			a := local.Account{Username: "tc-" + hub, Auth: local.AuthConnect, Server: "hub-1", HubUserID: hub, Email: hub + "@example.com"}
			created, _, err := local.PutAccount(ctx, tg, local.Put{Account: a})
			if err != nil {
				t.Fatal(err)
			}
			proxy.take()
			proxy.mu.Lock()
			proxy.before = func(*http.Request) {
				// The site gives the user a role meanwhile.
				must(t, hubproc.Request(http.MethodPatch, base+"/Users/"+created.ID, token, map[string]any{
					"schemas":    []string{scim.SchemaPatchOp},
					"Operations": []any{map[string]any{"op": "add", "path": "roles", "value": []any{map[string]any{"value": "editor"}}}},
				}, nil, 0))
			}
			proxy.mu.Unlock()
			a.ID, a.City = created.ID, "Nelson"
			if _, op, err := local.PutAccount(ctx, tg, local.Put{Account: a, Fields: synced}); err != nil || op != local.OpUpdated {
				t.Fatalf("update: %s %v", op, err)
			}
			writes := proxy.take()
			if len(writes) != 2 || writes[0].ifMatch == "" {
				t.Fatalf("writes %+v: want a write refused by If-Match, then another", writes)
			}
			u := siteUser(t, base, token, created.ID)
			if len(u.Roles) != 1 || u.Roles[0].Value != "editor" || len(u.Addresses) != 1 || u.Addresses[0].Locality != "Nelson" {
				t.Fatalf("site user %+v: want the site's role and the synced city", u)
			}
		})
	}
}

// TestNoValueFilters: a target that refuses value-path filters in a PATCH
// (400 invalidFilter or invalidPath), or answers noTarget again after a fresh
// read, gets the update merged and PUT instead of the same PATCH again — and
// the site's own values stay.
func TestNoValueFilters(t *testing.T) {
	base, token := startHub(t)
	for _, scimType := range []string{scim.ErrTypeInvalidFilter, scim.ErrTypeInvalidPath, scim.ErrTypeNoTarget} {
		t.Run(scimType, func(t *testing.T) {
			ctx := context.Background()
			proxy, purl := newSiteProxy(t, base, false)
			tg := newTarget(t, scimtarget.Config{BaseURL: purl, Token: token, Extension: true, Metadata: true})
			hub := "nf-" + scimType
			a := local.Account{Username: "tc-" + hub, Auth: local.AuthConnect, Server: "hub-1", HubUserID: hub,
				Email: hub + "@example.com", City: "Nelson", CustomFields: []local.CustomField{{Name: "house", Value: "Red"}}}
			created, _, err := local.PutAccount(ctx, tg, local.Put{Account: a})
			if err != nil {
				t.Fatal(err)
			}
			// The site adds a second email and its own custom field.
			must(t, hubproc.Request(http.MethodPatch, base+"/Users/"+created.ID, token, map[string]any{
				"schemas": []string{scim.SchemaPatchOp},
				"Operations": []any{
					map[string]any{"op": "add", "path": "emails", "value": []any{map[string]any{"value": "home@example.com", "type": "home"}}},
					map[string]any{"op": "add", "path": scim.SchemaConnectUser + ":customFields", "value": []any{map[string]any{"name": "shoe-size", "value": "42"}}},
				},
			}, nil, 0))
			proxy.take()
			proxy.mu.Lock()
			proxy.noFilters = scimType
			proxy.mu.Unlock()

			a.ID, a.Email, a.City = created.ID, "new-"+hub+"@example.com", "Picton"
			a.CustomFields = []local.CustomField{{Name: "house", Value: "Blue"}}
			a.Suspended, a.SuspendedBy = true, local.SuspendedByConnect
			if _, op, err := local.PutAccount(ctx, tg, local.Put{Account: a, Fields: synced | local.FieldCustomFields}); err != nil || op != local.OpUpdated {
				t.Fatalf("update: %s %v", op, err)
			}
			var methods []string
			for _, w := range proxy.take() {
				methods = append(methods, w.method)
			}
			want := []string{http.MethodPatch, http.MethodPut}
			if scimType == scim.ErrTypeNoTarget {
				// noTarget is first taken for a site change: read, PATCH again.
				want = []string{http.MethodPatch, http.MethodPatch, http.MethodPut}
			}
			if diff := cmp.Diff(want, methods); diff != "" {
				t.Fatalf("writes (-want +got):\n%s", diff)
			}
			u := siteUser(t, base, token, created.ID)
			wantEmails := []scim.MultiValue{{Value: a.Email, Type: "work", Primary: true}, {Value: "home@example.com", Type: "home"}}
			if diff := cmp.Diff(wantEmails, u.Emails); diff != "" {
				t.Fatalf("emails (-want +got):\n%s", diff)
			}
			wantFields := []scim.CustomField{{Name: "house", Value: "Blue"}, {Name: "shoe-size", Value: "42"},
				{Name: "connect:suspended", Value: "1"}, {Name: "connect:suspendedBy", Value: "connect"}}
			if diff := cmp.Diff(wantFields, u.Connect.CustomFields); diff != "" {
				t.Fatalf("custom fields (-want +got):\n%s", diff)
			}
			if len(u.Addresses) != 1 || u.Addresses[0].Locality != "Picton" || u.IsActive() {
				t.Fatalf("site user %+v", u)
			}
		})
	}
}
