package scimtarget

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// A user update changes only the attributes the bridge syncs, and of those only
// the ones that differ (DESIGN.md §3: the site keeps its own values for what
// Connect does not sync). The site application's other emails, phone numbers
// and addresses, its division, manager, roles, entitlements, its own custom
// fields and its own extension schemas are never sent, so never lost.
//
// The change is a list of userOps. A target with PATCH gets them as one PATCH
// request (RFC 7644 §3.5.2), with value-path filters for the one value of a
// multi-valued attribute the mapping reads. A target without PATCH (its
// ServiceProviderConfig says so, or it answers 501/405), or a change no path
// can address, is merged instead: the raw resource is read, the same ops are
// applied to it, and it is PUT back whole — every attribute the bridge does
// not model travels back as it came — with If-Match when the target has ETags.

// userOp is one change of a user update.
type userOp struct {
	op     string // "add", "replace" or "remove"
	schema string // extension URN; "" for the core schema
	attr   string
	sel    *selector // the values of a multi-valued attr it applies to; nil: the attribute
	sub    string    // sub-attribute ("" for the attribute or the selected values)
	value  any
}

// selector picks values of a multi-valued attribute: those whose key equals val
// (case-insensitively, as the target's filter would), or the one at index when
// index ≥ 0 — which no PATCH path can name, so only a merge applies it.
type selector struct {
	key, val string
	index    int
}

func bySub(key, val string) *selector { return &selector{key: key, val: val, index: -1} }

// path renders o as a PATCH path: [urn:]attr[[key eq "val"]][.sub].
func (o userOp) path() string {
	p := o.attr
	if o.schema != "" {
		p = o.schema + ":" + p
	}
	if o.sel != nil {
		p += "[" + o.sel.key + " eq " + quote(o.sel.val) + "]"
	}
	if o.sub != "" {
		p += "." + o.sub
	}
	return p
}

// patchable reports whether every op has a PATCH path.
func patchable(ops []userOp) bool {
	for _, o := range ops {
		if o.sel != nil && o.sel.index >= 0 {
			return false
		}
	}
	return true
}

// userOps returns the changes that turn the stored user (raw as the target
// returned it, old as read) into m. Only fields whose views differ are touched.
func (t *Target) userOps(raw *scim.User, old, m local.Account) []userOp {
	sv, mv := t.view(old), t.view(m)
	var ops []userOp
	str := func(schema, attr, sub, before, after string) {
		if before == after {
			return
		}
		if after == "" {
			ops = append(ops, userOp{op: "remove", schema: schema, attr: attr, sub: sub})
			return
		}
		ops = append(ops, userOp{op: "replace", schema: schema, attr: attr, sub: sub, value: after})
	}
	str("", "userName", "", sv.Username, mv.Username)
	if sv.Auth != mv.Auth || sv.Server != mv.Server || sv.HubUserID != mv.HubUserID {
		if mv.Auth == local.AuthConnect {
			ops = append(ops, userOp{op: "replace", attr: "externalId", value: userKey(mv.Server, mv.HubUserID)})
		} else {
			ops = append(ops, userOp{op: "remove", attr: "externalId"})
		}
	}
	str("", "name", "givenName", sv.GivenName, mv.GivenName)
	str("", "name", "familyName", sv.FamilyName, mv.FamilyName)
	str("", "displayName", "", sv.DisplayName, mv.DisplayName)
	str("", "title", "", sv.Title, mv.Title)
	str("", "preferredLanguage", "", sv.Language, mv.Language)
	str("", "timezone", "", sv.Timezone, mv.Timezone)
	if sv.Email != mv.Email {
		ops = append(ops, multiOps("emails", raw.Emails, sv.Email, mv.Email)...)
	}
	if sv.Phone != mv.Phone {
		ops = append(ops, multiOps("phoneNumbers", raw.PhoneNumbers, sv.Phone, mv.Phone)...)
	}
	if sv.City != mv.City || sv.Country != mv.Country {
		ops = append(ops, addressOps(raw.Addresses, sv, mv)...)
	}
	ent := scim.SchemaEnterpriseUser
	str(ent, "employeeNumber", "", sv.IDNumber, mv.IDNumber)
	str(ent, "organization", "", sv.Organization, mv.Organization)
	str(ent, "department", "", sv.Department, mv.Department)
	if sv.Suspended != mv.Suspended || sv.IsDeleted() != mv.IsDeleted() {
		ops = append(ops, userOp{op: "replace", attr: "active", value: !mv.Suspended && !mv.IsDeleted()})
	}
	if !t.cfg.Extension {
		return ops
	}
	con := scim.SchemaConnectUser
	if sv.EmailVerified != mv.EmailVerified {
		ops = append(ops, userOp{op: "replace", schema: con, attr: "emailVerified", value: mv.EmailVerified})
	}
	if !slices.Equal(sv.Interests, mv.Interests) {
		if len(mv.Interests) == 0 {
			ops = append(ops, userOp{op: "remove", schema: con, attr: "interests"})
		} else {
			ops = append(ops, userOp{op: "replace", schema: con, attr: "interests", value: mv.Interests})
		}
	}
	if t.cfg.PasswordHashes {
		str(con, "passwordHash", "", sv.PasswordHash, mv.PasswordHash)
	}
	return append(ops, t.customFieldOps(raw, mv)...)
}

// multiOps changes the one value of emails or phoneNumbers the mapping reads
// (the primary one, else the first) and leaves the others alone. Clearing it
// removes them all: with another value left, that one would read as the
// account's email on the next run, and the next run would remove it too.
func multiOps(attr string, vals []scim.MultiValue, before, after string) []userOp {
	switch {
	case after == "":
		if len(vals) == 0 {
			return nil
		}
		return []userOp{{op: "remove", attr: attr}}
	case len(vals) == 0 || before == "":
		// Made primary, so it is the value read back.
		return []userOp{{op: "add", attr: attr, value: []any{map[string]any{"value": after, "type": "work", "primary": true}}}}
	}
	return []userOp{{op: "replace", attr: attr, sel: bySub("value", before), sub: "value", value: after}}
}

// addressOps changes locality and country of the address the mapping reads
// (the work address, else the first). It is named by its type when no other
// address shares it; otherwise only a merge can reach it.
func addressOps(as []scim.Address, sv, mv local.Account) []userOp {
	i := pickAddressIndex(as)
	if i < 0 {
		ad := map[string]any{"type": "work", "primary": true}
		if mv.City != "" {
			ad["locality"] = mv.City
		}
		if mv.Country != "" {
			ad["country"] = mv.Country
		}
		return []userOp{{op: "add", attr: "addresses", value: []any{ad}}}
	}
	sel := &selector{index: i}
	if typ := as[i].Type; typ != "" {
		n := 0
		for _, a := range as {
			if strings.EqualFold(a.Type, typ) {
				n++
			}
		}
		if n == 1 {
			sel = bySub("type", typ)
		}
	}
	var ops []userOp
	for _, f := range []struct{ sub, before, after string }{{"locality", sv.City, mv.City}, {"country", sv.Country, mv.Country}} {
		switch {
		case f.before == f.after:
		case f.after == "":
			ops = append(ops, userOp{op: "remove", attr: "addresses", sel: sel, sub: f.sub})
		default:
			ops = append(ops, userOp{op: "replace", attr: "addresses", sel: sel, sub: f.sub, value: f.after})
		}
	}
	return ops
}

// customFieldOps changes the Connect extension's customFields one name at a
// time and never sends the whole list: the site application's own fields share
// it. Each name of the caller's fields (the hub's) is added when the stored
// user has none of it, or its value replaced by a name filter when a stored one
// differs; a name the caller does not send is never removed — nothing on the
// target tells a hub field from a site field (the hub's keep their own names).
// Only the bridge's reserved connect: metadata fields are also removed, by name.
func (t *Target) customFieldOps(raw *scim.User, mv local.Account) []userOp {
	con := scim.SchemaConnectUser
	have := map[string][]string{}
	if raw.Connect != nil {
		for _, f := range raw.Connect.CustomFields {
			have[f.Name] = append(have[f.Name], f.Value)
		}
	}
	var ops []userOp
	var add []any
	seen := map[string]bool{}
	set := func(name, val string) {
		if seen[name] {
			return // one value per name: the first (a name filter sets them all)
		}
		seen[name] = true
		cur, had := have[name]
		switch {
		case !had:
			add = append(add, map[string]any{"name": name, "value": val})
		case slices.ContainsFunc(cur, func(v string) bool { return v != val }):
			ops = append(ops, userOp{op: "replace", schema: con, attr: "customFields", sel: bySub("name", name), sub: "value", value: val})
		}
	}
	for _, f := range mv.CustomFields {
		set(f.Name, f.Value)
	}
	if t.cfg.Metadata {
		want := t.metaFields(mv)
		for _, f := range want {
			set(f.Name, f.Value)
		}
		for _, name := range []string{metaSuspended, metaSuspendedBy, metaDeleted, metaPrivileged} {
			if _, had := have[name]; had && !slices.ContainsFunc(want, func(f scim.CustomField) bool { return f.Name == name }) {
				ops = append(ops, userOp{op: "remove", schema: con, attr: "customFields", sel: bySub("name", name)})
			}
		}
	}
	if len(add) > 0 {
		ops = append(ops, userOp{op: "add", schema: con, attr: "customFields", value: add})
	}
	return ops
}

// keepSiteFields returns the custom fields the target holds after the caller's
// (hub's) list hub is written over stored: stored's in order, the hub's value
// for every name the hub sends, then the hub's new names — the site
// application's own fields kept (customFieldOps writes exactly this).
func keepSiteFields(stored, hub []local.CustomField) []local.CustomField {
	val := map[string]string{}
	var order []string
	for _, f := range hub {
		if _, ok := val[f.Name]; !ok {
			val[f.Name] = f.Value
			order = append(order, f.Name)
		}
	}
	out := make([]local.CustomField, 0, len(stored)+len(order))
	present := map[string]bool{}
	for _, f := range stored {
		if v, ok := val[f.Name]; ok {
			f.Value = v
		}
		present[f.Name] = true
		out = append(out, f)
	}
	for _, name := range order {
		if !present[name] {
			out = append(out, local.CustomField{Name: name, Value: val[name]})
		}
	}
	return out
}

// errNoPatch: the target does not implement PATCH for users.
var errNoPatch = errors.New("patch unsupported")

// patchUser sends ops as one PATCH request. A 400 noTarget means a value the
// ops name is gone (the site changed the user since it was read): like a 412,
// the caller reads it again, and merges if it comes again. A 400 invalidPath
// or invalidFilter (a target without value-path filters) makes the caller
// merge.
func (t *Target) patchUser(ctx context.Context, id string, ops []userOp, etag string) (fetched, error) {
	body := patchBody{Schemas: []string{scim.SchemaPatchOp}}
	for _, o := range ops {
		body.Operations = append(body.Operations, patchOp{Op: o.op, Path: o.path(), Value: o.value})
	}
	resp, err := t.do(ctx, http.MethodPatch, "/Users/"+url.PathEscape(id), t.userQuery(), body, t.ifMatch(etag))
	if err != nil {
		return fetched{}, err
	}
	switch resp.status {
	case http.StatusOK:
		return t.readUser("patch user", resp)
	case http.StatusNoContent:
		return t.getUser(ctx, id)
	case http.StatusPreconditionFailed:
		return fetched{}, errPrecondition
	case http.StatusNotImplemented, http.StatusMethodNotAllowed:
		return fetched{}, errNoPatch
	case http.StatusBadRequest:
		var e scim.ErrorResponse
		if json.Unmarshal(resp.body, &e) == nil {
			switch e.ScimType {
			case scim.ErrTypeNoTarget:
				return fetched{}, errNoTarget
			case scim.ErrTypeInvalidPath, scim.ErrTypeInvalidFilter:
				return fetched{}, fmt.Errorf("patch user %s: %s: %w", id, e.ScimType, errPatchPath)
			}
		}
	}
	return fetched{}, statusErr("patch user "+id, resp)
}

// ifMatch is the If-Match header of a write over the version etag, when the
// target has ETags.
func (t *Target) ifMatch(etag string) http.Header {
	if etag == "" || !t.etags {
		return nil
	}
	return http.Header{"If-Match": {etag}}
}

// rawUser is a user as the target returned it, every attribute kept.
type rawUser struct {
	f   fetched
	doc map[string]any
}

// getRaw reads the whole user (every attribute the target returns by default,
// its own extensions included) for a merge, and its version.
func (t *Target) getRaw(ctx context.Context, id string) (rawUser, error) {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return rawUser{}, fmt.Errorf("account %q: %w", id, local.ErrNotFound)
	}
	resp, err := t.do(ctx, http.MethodGet, "/Users/"+url.PathEscape(id), url.Values{"excludedAttributes": {"groups"}}, nil, nil)
	if err != nil {
		return rawUser{}, err
	}
	if resp.status != http.StatusOK {
		return rawUser{}, statusErr("get user "+id, resp)
	}
	var u scim.User
	if err := decode("get user", resp, &u); err != nil {
		return rawUser{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.UseNumber() // numbers of the site's own attributes go back as they came
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return rawUser{}, fmt.Errorf("scim target: get user: malformed response: %w", local.ErrUnavailable)
	}
	r := rawUser{f: fetched{acct: t.account(u), etag: etagOf(resp, &u), user: &u}, doc: doc}
	if t.cfg.PasswordHashes {
		// The hash is returned only when named, and naming it would drop the
		// attributes not named: read it on its own.
		h, err := t.getUser(ctx, id)
		if err != nil {
			return rawUser{}, err
		}
		r.f.acct.PasswordHash = h.acct.PasswordHash
	}
	return r, nil
}

// putMerged applies ops to the raw user and PUTs it back whole.
func (t *Target) putMerged(ctx context.Context, r rawUser, ops []userOp, m local.Account) (fetched, error) {
	doc := r.doc
	delete(doc, "meta")
	delete(doc, "groups")
	if t.cfg.PasswordHashes {
		// Not in doc (never returned by default): written explicitly, so a target
		// that clears what a PUT leaves out keeps it.
		if m.PasswordHash == "" {
			ops = append(ops, userOp{op: "remove", schema: scim.SchemaConnectUser, attr: "passwordHash"})
		} else {
			ops = append(ops, userOp{op: "replace", schema: scim.SchemaConnectUser, attr: "passwordHash", value: m.PasswordHash})
		}
	}
	applyOps(doc, ops)
	id := r.f.acct.ID
	resp, err := t.do(ctx, http.MethodPut, "/Users/"+url.PathEscape(id), t.userQuery(), doc, t.ifMatch(r.f.etag))
	if err != nil {
		return fetched{}, err
	}
	switch resp.status {
	case http.StatusOK:
		return t.readUser("replace user", resp)
	case http.StatusPreconditionFailed:
		return fetched{}, errPrecondition
	case http.StatusNoContent:
		return t.getUser(ctx, id)
	}
	return fetched{}, statusErr("replace user "+id, resp)
}

// applyOps applies ops to a raw resource the way the target applies a PATCH.
func applyOps(doc map[string]any, ops []userOp) {
	for _, o := range ops {
		cont := doc
		if o.schema != "" {
			k := keyOf(doc, o.schema)
			c, _ := doc[k].(map[string]any)
			if c == nil {
				if o.op == "remove" {
					continue
				}
				c = map[string]any{}
				doc[k] = c
				addSchema(doc, o.schema)
			}
			cont = c
		}
		k := keyOf(cont, o.attr)
		switch {
		case o.sel == nil && o.sub == "":
			switch o.op {
			case "remove":
				delete(cont, k)
			case "replace":
				cont[k] = o.value
			case "add":
				list, _ := cont[k].([]any)
				add := o.value.([]any)
				if slices.ContainsFunc(add, isPrimary) {
					// One primary value (RFC 7643 §2.4): the added one.
					for _, v := range list {
						if e, ok := v.(map[string]any); ok {
							delete(e, keyOf(e, "primary"))
						}
					}
				}
				cont[k] = append(list, add...)
			}
		case o.sel == nil: // a sub-attribute of a complex attribute (name.givenName)
			sub, _ := cont[k].(map[string]any)
			if sub == nil {
				if o.op == "remove" {
					continue
				}
				sub = map[string]any{}
				cont[k] = sub
			}
			if o.op == "remove" {
				delete(sub, keyOf(sub, o.sub))
			} else {
				sub[keyOf(sub, o.sub)] = o.value
			}
		default:
			list, _ := cont[k].([]any)
			kept := list[:0:0]
			for i, v := range list {
				e, _ := v.(map[string]any)
				if e == nil || !o.sel.matches(i, e) {
					kept = append(kept, v)
					continue
				}
				switch {
				case o.op == "remove" && o.sub == "":
					continue
				case o.op == "remove":
					delete(e, keyOf(e, o.sub))
				default:
					e[keyOf(e, o.sub)] = o.value
				}
				kept = append(kept, e)
			}
			if len(kept) == 0 {
				delete(cont, k)
			} else {
				cont[k] = kept
			}
		}
	}
}

func isPrimary(v any) bool {
	e, _ := v.(map[string]any)
	p, _ := e["primary"].(bool)
	return p
}

func (s *selector) matches(i int, e map[string]any) bool {
	if s.index >= 0 {
		return i == s.index
	}
	v, _ := e[keyOf(e, s.key)].(string)
	return strings.EqualFold(v, s.val)
}

// keyOf returns the key of m that names attr (attribute names are
// case-insensitive), or attr when none does.
func keyOf(m map[string]any, attr string) string {
	if _, ok := m[attr]; ok {
		return attr
	}
	for k := range m {
		if strings.EqualFold(k, attr) {
			return k
		}
	}
	return attr
}

func addSchema(doc map[string]any, urn string) {
	k := keyOf(doc, "schemas")
	list, _ := doc[k].([]any)
	for _, s := range list {
		if str, ok := s.(string); ok && strings.EqualFold(str, urn) {
			return
		}
	}
	doc[k] = append(list, urn)
}
