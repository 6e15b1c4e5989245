package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
)

// engine applies operations to a resource held as a generic JSON object whose keys
// are in schema case (as json.Marshal of the scim types writes them). The object
// is a private copy: a failed request simply discards it.
type engine struct {
	rt  *scim.ResourceType
	doc map[string]any
	// hook, when set, gets the first look at every target; it returns true when
	// it handled the operation (Group members).
	hook func(op string, t target, raw json.RawMessage) (bool, error)
}

// pathLimits bound PATCH paths. They are looser than the filter defaults in terms
// only: Okta-style `members[value eq "a" or value eq "b" ...]` removals list
// one term per member, and a flat "or" chain costs one nesting level.
var pathLimits = filter.Limits{MaxLength: 64 << 10, MaxTerms: 1000}

// target is a resolved PATCH path.
type target struct {
	schema *scim.Schema // nil for the common attributes id, externalId, meta
	attr   *scim.Attribute
	sub    *scim.Attribute // sub-attribute, dotted or after the value filter
	filter filter.Expr     // value filter of a multi-valued attribute
	ext    *scim.Schema    // the path names a whole extension object
}

// label is the attribute's canonical name for error details.
func (t target) label() string {
	if t.ext != nil {
		return t.ext.ID
	}
	return scim.AttrPath{Schema: t.schema, Attr: t.attr, Sub: t.sub}.String()
}

// apply runs one operation.
func (e *engine) apply(op Operation) error {
	if err := checkOp(&op); err != nil {
		return err
	}
	path := strings.TrimSpace(op.Path)
	if path == "" {
		// checkOp refused a remove without path.
		v, err := decodeValue(op.Value)
		if err != nil {
			return err
		}
		return e.applyObject(op.Op, v, nil)
	}
	t, err := e.resolve(path)
	if err != nil {
		return err
	}
	if t.ext != nil {
		if op.Op == OpRemove {
			delete(e.doc, t.ext.ID)
			return nil
		}
		v, err := decodeValue(op.Value)
		if err != nil {
			return err
		}
		return e.applyObject(op.Op, v, t.ext)
	}
	if e.hook != nil {
		if handled, err := e.hook(op.Op, t, op.Value); handled {
			return err
		}
	}
	var v any
	if !isNull(op.Value) {
		if v, err = decodeValue(op.Value); err != nil {
			return err
		}
	}
	if op.Op == OpRemove {
		return e.remove(t, v)
	}
	return e.set(op.Op, t, v)
}

// applyObject applies a path-less add or replace: every key of the object is an
// attribute name, a dotted or URN-qualified path, or an extension URN whose value
// is an object of that extension's attributes (ext set while inside it).
func (e *engine) applyObject(op string, v any, ext *scim.Schema) error {
	obj, ok := v.(map[string]any)
	if !ok {
		if ext != nil {
			return scim.BadRequest(scim.ErrTypeInvalidValue, "the value of %s must be an object", ext.ID)
		}
		return scim.BadRequest(scim.ErrTypeInvalidValue, "%s without a path needs an object value", op)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic when keys overlap ("name" and "name.givenName")
	for _, k := range keys {
		val := obj[k]
		if ext == nil && strings.EqualFold(k, "schemas") {
			continue
		}
		if strings.ContainsAny(k, "[]") {
			return scim.BadRequest(scim.ErrTypeInvalidPath, "value filters are not allowed in attribute names (%q)", short(k))
		}
		path := k
		if ext != nil {
			path = ext.ID + ":" + k
		}
		t, err := e.resolve(path)
		if err != nil {
			return err
		}
		if t.ext != nil {
			if ext != nil {
				return scim.BadRequest(scim.ErrTypeInvalidPath, "unknown attribute %q", short(path))
			}
			if err := e.applyObject(op, val, t.ext); err != nil {
				return err
			}
			continue
		}
		// Clients echo read-only attributes back (Okta sends the group's "id" with a
		// rename): an unchanged id and any meta are ignored, as PUT ignores them.
		if t.schema == nil && t.sub == nil {
			switch t.attr.Name {
			case "id":
				if s, ok := val.(string); ok && s == e.doc["id"] {
					continue
				}
			case "meta":
				continue
			}
		}
		if e.hook != nil {
			raw, err := json.Marshal(val)
			if err != nil {
				return scim.BadRequest(scim.ErrTypeInvalidValue, "invalid value for %s", t.label())
			}
			if handled, err := e.hook(op, t, raw); handled {
				if err != nil {
					return err
				}
				continue
			}
		}
		if err := e.set(op, t, val); err != nil {
			return err
		}
	}
	return nil
}

// resolve parses a PATCH path against the resource type.
func (e *engine) resolve(path string) (target, error) {
	for _, s := range e.rt.Extensions {
		if strings.EqualFold(path, s.ID) {
			return target{ext: s}, nil
		}
	}
	if strings.ContainsAny(path, "[]") {
		p, err := filter.ParsePath(e.rt, path, pathLimits)
		if err != nil {
			return target{}, clientError(err, scim.ErrTypeInvalidPath, "invalid path %q", short(path))
		}
		if p.Attr.Attr == nil {
			return target{}, scim.BadRequest(scim.ErrTypeInvalidPath, "invalid path %q", short(path))
		}
		t := target{schema: p.Attr.Schema, attr: p.Attr.Attr, sub: p.Sub, filter: p.Filter}
		if t.sub == nil {
			t.sub = p.Attr.Sub
		}
		if t.filter != nil && !t.attr.MultiValued {
			return target{}, scim.BadRequest(scim.ErrTypeInvalidFilter, "%s is single-valued and takes no value filter", t.label())
		}
		return t, nil
	}
	uri, rest := e.rt.SplitURN(path)
	attr, sub, dotted := strings.Cut(rest, ".")
	if attr == "" || (dotted && sub == "") || (uri != "" && rest == "") {
		return target{}, scim.BadRequest(scim.ErrTypeInvalidPath, "invalid path %q", short(path))
	}
	ap, ok := e.rt.Resolve(uri, attr, sub)
	if !ok {
		return target{}, scim.BadRequest(scim.ErrTypeInvalidPath, "unknown attribute %q", short(path))
	}
	return target{schema: ap.Schema, attr: ap.Attr, sub: ap.Sub}, nil
}

// container returns the object holding t's attribute: the resource itself or an
// extension object (created when create is set).
func (e *engine) container(s *scim.Schema, create bool) map[string]any {
	if s == nil || s == e.rt.Schema {
		return e.doc
	}
	c, ok := e.doc[s.ID].(map[string]any)
	if !ok {
		if !create {
			return nil
		}
		c = map[string]any{}
		e.doc[s.ID] = c
	}
	return c
}

// checkMutable refuses writes to readOnly attributes and changes to immutable ones
// (RFC 7643 §2.2: an immutable attribute may only be added when it has no value).
func checkMutable(op string, t target, cur any) error {
	for _, a := range []*scim.Attribute{t.attr, t.sub} {
		if a == nil {
			continue
		}
		switch a.Mutability {
		case scim.ReadOnly:
			return scim.BadRequest(scim.ErrTypeMutability, "%s is read-only", t.label())
		case scim.Immutable:
			if op != OpAdd || !empty(cur) {
				return scim.BadRequest(scim.ErrTypeMutability, "%s is immutable", t.label())
			}
		}
	}
	return nil
}

// set applies add or replace with a path. v is the decoded value (nil for null,
// which replace treats as unassign).
func (e *engine) set(op string, t target, v any) error {
	cont := e.container(t.schema, true)
	a := t.attr
	if err := checkMutable(op, t, cont[a.Name]); err != nil {
		return err
	}
	switch {
	case t.filter != nil:
		return e.setFiltered(op, cont, t, v)
	case t.sub != nil:
		return setSub(cont, t, v)
	}
	if v == nil {
		if op == OpReplace {
			delete(cont, a.Name)
		}
		return nil
	}
	nv, err := normAttr(a, v, t.label())
	if err != nil {
		return err
	}
	if a.MultiValued {
		add := nv.([]any)
		list := add
		var changed []int
		if op == OpAdd {
			list = asList(cont[a.Name])
			for _, x := range add {
				if i := indexOf(a, list, x); i >= 0 {
					// Already there: adding it again may only make it primary.
					if m, ok := x.(map[string]any); ok && isTrue(m["primary"]) {
						list[i].(map[string]any)["primary"] = true
						changed = append(changed, i)
					}
					continue
				}
				list = append(list, x)
				changed = append(changed, len(list)-1)
			}
		} else {
			for i := range list {
				changed = append(changed, i)
			}
		}
		if err := fixPrimary(a, list, changed, t.label()); err != nil {
			return err
		}
		putList(cont, a.Name, list)
		return nil
	}
	if a.Type == scim.TypeComplex {
		// RFC 7644 §3.5.2.1/.3: sub-attributes in the value replace or add, the
		// others are left unchanged.
		m := asMap(cont[a.Name])
		if m == nil {
			m = map[string]any{}
		}
		for k, x := range nv.(map[string]any) {
			if x == nil {
				delete(m, k)
			} else {
				m[k] = x
			}
		}
		putMap(cont, a.Name, m)
		return nil
	}
	putValue(cont, a.Name, nv)
	return nil
}

// setSub sets a sub-attribute without a value filter: of the complex attribute,
// or of every value of a multi-valued one (creating one value when there is none).
func setSub(cont map[string]any, t target, v any) error {
	a, s := t.attr, t.sub
	nv, err := normAttr(s, v, t.label())
	if err != nil {
		return err
	}
	if !a.MultiValued {
		m := asMap(cont[a.Name])
		if m == nil {
			m = map[string]any{}
		}
		putValue(m, s.Name, nv)
		putMap(cont, a.Name, m)
		return nil
	}
	list := asList(cont[a.Name])
	if len(list) == 0 {
		if nv == nil {
			return nil
		}
		list = []any{map[string]any{}}
	}
	changed := make([]int, 0, len(list))
	for i := range list {
		m := asMap(list[i])
		if m == nil {
			return scim.BadRequest(scim.ErrTypeInvalidPath, "%s has no sub-attributes", t.attr.Name)
		}
		fresh, _ := normAttr(s, v, t.label()) // a copy per value: values never share maps
		putValue(m, s.Name, fresh)
		changed = append(changed, i)
	}
	if err := fixPrimary(a, list, changed, t.label()); err != nil {
		return err
	}
	putList(cont, a.Name, compact(list))
	return nil
}

// setFiltered applies add or replace to the values a value filter selects. When
// none matches, add creates the value the filter describes (Entra ID adds
// `emails[type eq "work"].value` this way) and replace fails with noTarget.
func (e *engine) setFiltered(op string, cont map[string]any, t target, v any) error {
	a := t.attr
	if a.Type != scim.TypeComplex {
		return scim.BadRequest(scim.ErrTypeInvalidFilter, "%s takes no value filter", t.label())
	}
	list := asList(cont[a.Name])
	idx := matches(t.filter, list)
	var changed []int
	if len(idx) == 0 {
		base, ok := eqTerms(t.filter)
		if op == OpReplace || !ok {
			return scim.BadRequest(scim.ErrTypeNoTarget, "no value of %s matches the filter", a.Name)
		}
		if v == nil {
			return nil
		}
		nb, err := normValue(a, base, a.Name)
		if err != nil {
			return scim.BadRequest(scim.ErrTypeNoTarget, "no value of %s matches the filter", a.Name)
		}
		list = append(list, nb)
		idx = []int{len(list) - 1}
	}
	for _, i := range idx {
		m := asMap(list[i])
		if m == nil {
			continue
		}
		if t.sub != nil {
			nv, err := normAttr(t.sub, v, t.label())
			if err != nil {
				return err
			}
			putValue(m, t.sub.Name, nv)
			changed = append(changed, i)
			continue
		}
		if v == nil { // replace with null unassigns the matching values
			list[i] = nil
			continue
		}
		nv, err := normValue(a, v, t.label())
		if err != nil {
			return err
		}
		nm := nv.(map[string]any)
		if op == OpReplace {
			m = map[string]any{}
			list[i] = m
		}
		for k, x := range nm {
			putValue(m, k, x)
		}
		changed = append(changed, i)
	}
	if err := fixPrimary(a, list, changed, t.label()); err != nil {
		return err
	}
	putList(cont, a.Name, compact(list))
	return nil
}

// remove applies a remove operation. v, when not nil, lists the values to remove
// from a multi-valued attribute (Entra ID removes members this way).
func (e *engine) remove(t target, v any) error {
	if err := checkMutable(OpRemove, t, nil); err != nil {
		return err
	}
	cont := e.container(t.schema, false)
	if cont == nil {
		return nil
	}
	a := t.attr
	cur, ok := cont[a.Name]
	if !ok {
		return nil
	}
	switch {
	case t.filter == nil && t.sub == nil:
		if v == nil || !a.MultiValued {
			delete(cont, a.Name)
			return nil
		}
		nv, err := normAttr(a, v, t.label())
		if err != nil {
			return err
		}
		drop := nv.([]any)
		list := asList(cur)
		for i, x := range list {
			for _, d := range drop {
				if covers(a, d, x) {
					list[i] = nil
					break
				}
			}
		}
		putList(cont, a.Name, compact(list))
	case t.filter == nil:
		if !a.MultiValued {
			m := asMap(cur)
			delete(m, t.sub.Name)
			putMap(cont, a.Name, m)
			return nil
		}
		list := asList(cur)
		for _, x := range list {
			delete(asMap(x), t.sub.Name)
		}
		putList(cont, a.Name, compact(list))
	default:
		list := asList(cur)
		for _, i := range matches(t.filter, list) {
			if t.sub == nil {
				list[i] = nil
			} else {
				delete(asMap(list[i]), t.sub.Name)
			}
		}
		putList(cont, a.Name, compact(list))
	}
	return nil
}

// finish drops empty extension objects and checks required attributes.
func (e *engine) finish() error {
	for _, s := range e.rt.Extensions {
		if m, ok := e.doc[s.ID].(map[string]any); ok && len(m) == 0 {
			delete(e.doc, s.ID)
		}
	}
	for i := range e.rt.Schema.Attributes {
		a := &e.rt.Schema.Attributes[i]
		if a.Required && !a.MultiValued && empty(e.doc[a.Name]) {
			return scim.BadRequest(scim.ErrTypeInvalidValue, "%s is required", a.Name)
		}
	}
	return nil
}

// fixPrimary enforces RFC 7643 §2.4: at most one value is primary. A value the
// operation made primary clears primary on the others; two made primary at once
// is an error.
func fixPrimary(a *scim.Attribute, list []any, changed []int, label string) error {
	if _, ok := a.Sub("primary"); !ok || a.Type != scim.TypeComplex {
		return nil
	}
	keep := -1
	for _, i := range changed {
		if m := asMap(list[i]); m != nil && isTrue(m["primary"]) {
			if keep >= 0 && keep != i {
				return scim.BadRequest(scim.ErrTypeInvalidValue, "at most one value of %s may be primary", label)
			}
			keep = i
		}
	}
	if keep < 0 {
		return nil
	}
	for j, x := range list {
		if m := asMap(x); m != nil && j != keep {
			delete(m, "primary")
		}
	}
	return nil
}

// normAttr checks v against attribute a and returns it with keys in schema case
// and booleans as bool. A multi-valued attribute's value becomes a list (a single
// value is wrapped); nulls in it are dropped.
func normAttr(a *scim.Attribute, v any, label string) (any, error) {
	if !a.MultiValued || v == nil {
		return normValue(a, v, label)
	}
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	out := make([]any, 0, len(items))
	for _, it := range items {
		x, err := normValue(a, it, label)
		if err != nil {
			return nil, err
		}
		if m, ok := x.(map[string]any); ok {
			x = stripNil(m)
		}
		if !empty(x) {
			out = append(out, x)
		}
	}
	return out, nil
}

// normValue checks one value of attribute a. Complex values keep null
// sub-attributes (they unassign in a merge); read-only sub-attributes a client
// echoes back are dropped.
func normValue(a *scim.Attribute, v any, label string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch a.Type {
	case scim.TypeComplex:
		switch x := v.(type) {
		case string:
			// Entra ID sends the enterprise manager as its id alone.
			if _, ok := a.Sub("value"); ok {
				return map[string]any{"value": x}, nil
			}
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, sv := range x {
				sa, ok := a.Sub(k)
				if !ok {
					return nil, scim.BadRequest(scim.ErrTypeInvalidPath, "unknown attribute %s.%s", label, short(k))
				}
				if sa.Mutability == scim.ReadOnly {
					continue
				}
				n, err := normAttr(sa, sv, label+"."+sa.Name)
				if err != nil {
					return nil, err
				}
				out[sa.Name] = n
			}
			return out, nil
		}
		return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "%s must be an object", label)
	case scim.TypeBoolean:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string: // Entra ID: "True" / "False"
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "%s must be a boolean", label)
	case scim.TypeInteger, scim.TypeDecimal:
		if n, ok := v.(json.Number); ok {
			if a.Type == scim.TypeInteger {
				if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
					return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "%s must be an integer", label)
				}
			}
			return n, nil
		}
		return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "%s must be a number", label)
	case scim.TypeDateTime:
		if s, ok := v.(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return s, nil
			}
		}
		return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "%s must be an RFC 3339 date-time", label)
	default: // string, reference, binary
		if s, ok := v.(string); ok {
			return s, nil
		}
		return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "%s must be a string", label)
	}
}

// eqTerms returns the sub-attribute values an equality filter ("type eq "work""
// or an "and" of such) pins down, or false when the filter is anything else.
func eqTerms(f filter.Expr) (map[string]any, bool) {
	switch x := f.(type) {
	case *filter.Compare:
		if x.Op != filter.OpEq || x.Path.Sub == nil {
			return nil, false
		}
		var v any
		switch lit := x.Value.(type) {
		case string, bool:
			v = lit
		case int64:
			v = json.Number(strconv.FormatInt(lit, 10))
		case float64:
			v = json.Number(strconv.FormatFloat(lit, 'g', -1, 64))
		default:
			return nil, false
		}
		return map[string]any{x.Path.Sub.Name: v}, true
	case *filter.And:
		l, ok := eqTerms(x.L)
		if !ok {
			return nil, false
		}
		r, ok := eqTerms(x.R)
		if !ok {
			return nil, false
		}
		for k, v := range r {
			if old, dup := l[k]; dup && old != v {
				return nil, false
			}
			l[k] = v
		}
		return l, true
	}
	return nil, false
}

// matches returns the indexes of the values f selects.
func matches(f filter.Expr, list []any) []int {
	var idx []int
	for i, v := range list {
		if matchValue(f, v) {
			idx = append(idx, i)
		}
	}
	return idx
}

// indexOf finds x in list ignoring "primary" (adding an existing value again
// does not duplicate it).
func indexOf(a *scim.Attribute, list []any, x any) int {
	for i, y := range list {
		if sameValue(a, x, y, true) {
			return i
		}
	}
	return -1
}

// sameValue compares two values of attribute a; absent, null, "" and false
// sub-attributes count as equal.
func sameValue(a *scim.Attribute, x, y any, ignorePrimary bool) bool {
	mx, okx := x.(map[string]any)
	my, oky := y.(map[string]any)
	if okx != oky {
		return false
	}
	if !okx {
		return scalarEqual(a, x, y)
	}
	for _, s := range a.SubAttributes {
		if ignorePrimary && s.Name == "primary" {
			continue
		}
		vx, vy := mx[s.Name], my[s.Name]
		if empty(vx) && empty(vy) {
			continue
		}
		if !scalarEqual(&s, vx, vy) {
			return false
		}
	}
	return true
}

// covers reports whether stored value x matches the removal pattern d: every
// sub-attribute d sets has the same value in x.
func covers(a *scim.Attribute, d, x any) bool {
	md, ok := d.(map[string]any)
	if !ok {
		return scalarEqual(a, d, x)
	}
	mx, ok := x.(map[string]any)
	if !ok || len(md) == 0 {
		return false
	}
	for k, v := range md {
		s, ok := a.Sub(k)
		if !ok || !scalarEqual(s, v, mx[k]) {
			return false
		}
	}
	return true
}

// scalarEqual compares two primitive values of attribute a.
func scalarEqual(a *scim.Attribute, x, y any) bool {
	sx, okx := x.(string)
	sy, oky := y.(string)
	if okx && oky {
		if a.CaseExact {
			return sx == sy
		}
		return strings.EqualFold(sx, sy)
	}
	if isBool(x) || isBool(y) {
		return isTrue(x) == isTrue(y)
	}
	return x == y
}

func isBool(v any) bool { _, ok := v.(bool); return ok }

// isTrue reports whether v is true or "true" (any case).
func isTrue(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return strings.EqualFold(strings.TrimSpace(x), "true")
	}
	return false
}

// empty reports whether v counts as unassigned (RFC 7643 §2.5).
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		for _, y := range x {
			if !empty(y) {
				return false
			}
		}
		return true
	}
	return false
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// compact drops nil and empty values.
func compact(list []any) []any {
	out := list[:0]
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			x = stripNil(m)
		}
		if !empty(x) {
			out = append(out, x)
		}
	}
	return out
}

func stripNil(m map[string]any) map[string]any {
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	return m
}

func putValue(m map[string]any, k string, v any) {
	if empty(v) {
		delete(m, k)
		return
	}
	m[k] = v
}

func putList(m map[string]any, k string, l []any) {
	if len(l) == 0 {
		delete(m, k)
		return
	}
	m[k] = l
}

func putMap(m map[string]any, k string, v map[string]any) {
	if v == nil || empty(v) {
		delete(m, k)
		return
	}
	m[k] = stripNil(v)
}

// decodeValue parses a raw operation value, numbers kept as json.Number.
func decodeValue(raw json.RawMessage) (any, error) {
	if isNull(raw) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, scim.BadRequest(scim.ErrTypeInvalidSyntax, "value is not valid JSON")
	}
	return v, nil
}

// toDoc converts a resource to its generic JSON object.
func toDoc(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// fromDoc converts the patched object back into a resource; the typed decode is
// the final type check.
func fromDoc(doc map[string]any, out any) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return scim.BadRequest(scim.ErrTypeInvalidValue, "invalid attribute value")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		var se *scim.Error
		if errors.As(err, &se) {
			return se
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return scim.BadRequest(scim.ErrTypeInvalidValue, "%s has the wrong type", short(te.Field))
		}
		return scim.BadRequest(scim.ErrTypeInvalidValue, "invalid attribute value")
	}
	return nil
}

// clientError passes a *scim.Error through and replaces anything else (whose text
// may be internal) with a 400 of the given type.
func clientError(err error, scimType, format string, args ...any) *scim.Error {
	var se *scim.Error
	if errors.As(err, &se) && se.Status == http.StatusBadRequest {
		return se
	}
	return scim.BadRequest(scimType, format, args...)
}

// opError prefixes a client error's detail with the operation's position.
func opError(i int, err error) error {
	var se *scim.Error
	if errors.As(err, &se) {
		return &scim.Error{Status: se.Status, ScimType: se.ScimType, Detail: "operation " + strconv.Itoa(i+1) + ": " + se.Detail}
	}
	return err
}
