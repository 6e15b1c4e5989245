package server

import (
	"encoding/json"
	"strings"

	"github.com/connectsso/connect/scim"
)

// attrRef is one resolved entry of attributes/excludedAttributes.
type attrRef struct {
	ext  string // extension URN holding the attribute, "" for core and common
	attr string // canonical attribute name; "" means the whole extension object
	sub  string // canonical sub-attribute name or ""
}

// projection is what a request asked to see (RFC 7644 §3.4.2.5, §3.9).
type projection struct {
	attrs    []attrRef // nil: the default set
	excluded []attrRef
	// hashes: the caller may see connect passwordHash (it is still returned only
	// when named in attributes, its "returned" being "request").
	hashes bool
}

// parseAttrList resolves a comma-separated attribute list against rt. Unknown
// names are ignored (the RFC gives them no error), and a value filter after a
// name ("emails[type eq \"work\"]", sent by Microsoft's test suite) is read as
// the attribute itself.
func parseAttrList(rt *scim.ResourceType, items []string) []attrRef {
	var out []attrRef
	for _, item := range items {
		for _, p := range strings.Split(item, ",") {
			p = strings.TrimSpace(p)
			if i := strings.IndexByte(p, '['); i >= 0 {
				rest := ""
				if j := strings.IndexByte(p, ']'); j > i {
					rest = p[j+1:]
				}
				p = p[:i] + rest
			}
			if p == "" {
				continue
			}
			if ref, ok := resolveRef(rt, p); ok {
				out = append(out, ref)
			}
		}
	}
	return out
}

func resolveRef(rt *scim.ResourceType, p string) (attrRef, bool) {
	for _, e := range rt.Extensions {
		if strings.EqualFold(p, e.ID) {
			return attrRef{ext: e.ID}, true
		}
	}
	ap, ok := rt.ParsePath(p)
	if !ok {
		return attrRef{}, false
	}
	ref := attrRef{attr: ap.Attr.Name}
	if ap.Sub != nil {
		ref.sub = ap.Sub.Name
	}
	if ap.Schema != nil && ap.Schema != rt.Schema {
		ref.ext = ap.Schema.ID
	}
	return ref, true
}

// names reports whether refs name attr (or a sub-attribute of it) in ext.
func names(refs []attrRef, ext, attr string) bool {
	for _, r := range refs {
		if r.ext == ext && (r.attr == attr || (r.attr == "" && ext != "")) {
			return true
		}
	}
	return false
}

// wantsMembers reports whether a Group response should carry members. Default
// responses do (RFC 7643 §4.2 "returned: default"); excludedAttributes=members
// or an attributes list without it leaves them out, which is what large groups
// should ask for.
func (p projection) wantsMembers() bool {
	if p.attrs != nil {
		return names(p.attrs, "", "members")
	}
	for _, r := range p.excluded {
		if r.ext == "" && r.attr == "members" && r.sub == "" {
			return false
		}
	}
	return true
}

// wantsHash reports whether passwordHash is to be returned.
func (p projection) wantsHash() bool {
	if !p.hashes || p.attrs == nil {
		return false
	}
	for _, r := range p.attrs {
		if r.ext == scim.SchemaConnectUser && r.attr == "passwordHash" {
			return true
		}
	}
	return false
}

// always holds the attributes returned whatever the request says.
func always(key string) bool {
	return key == "id" || key == "schemas" || key == "meta"
}

// render returns the JSON value of a resource under p. The default projection
// is the struct itself; anything else goes through a generic map whose
// top-level values stay raw JSON (json.RawMessage) until a reference reaches
// inside one: only the objects a sub-attribute or extension attribute names
// are decoded, so "attributes=id" or "excludedAttributes=members" cost one
// shallow pass.
func (p projection) render(v any, rt *scim.ResourceType) (any, error) {
	if g, ok := v.(*scim.Group); ok && p.attrs == nil && g.Members == nil && onlyMembers(p.excluded) {
		// prepareGroup already left the members out: the struct is the
		// answer (Entra asks for every group this way).
		g.SetSchemas()
		return v, nil
	}
	if p.attrs == nil && len(p.excluded) == 0 {
		return v, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	full := make(map[string]any, len(top))
	for k, val := range top {
		full[k] = val
	}
	if p.attrs != nil {
		out := map[string]any{}
		for k, val := range full {
			if always(k) {
				out[k] = val
			}
		}
		for _, r := range p.attrs {
			if err := copyRef(out, full, r); err != nil {
				return nil, err
			}
		}
		full = out
	}
	for _, r := range p.excluded {
		if err := dropRef(full, r); err != nil {
			return nil, err
		}
	}
	// Extensions left empty by projection disappear, and "schemas" lists what is
	// left.
	schemas := []any{rt.Schema.ID}
	for _, e := range rt.Extensions {
		switch obj := full[e.ID].(type) {
		case map[string]any:
			if len(obj) == 0 {
				delete(full, e.ID)
				continue
			}
			schemas = append(schemas, e.ID)
		case json.RawMessage:
			if string(obj) == "{}" {
				delete(full, e.ID)
				continue
			}
			schemas = append(schemas, e.ID)
		}
	}
	full["schemas"] = schemas
	return full, nil
}

// onlyMembers reports whether refs name nothing but a group's members.
func onlyMembers(refs []attrRef) bool {
	for _, r := range refs {
		if r.ext != "" || r.attr != "members" || r.sub != "" {
			return false
		}
	}
	return true
}

// decoded returns m[key] decoded from raw JSON (and stores the decoded value
// back), so that a reference can reach inside it.
func decoded(m map[string]any, key string) (any, error) {
	val, ok := m[key]
	if !ok {
		return nil, nil
	}
	rm, isRaw := val.(json.RawMessage)
	if !isRaw {
		return val, nil
	}
	var x any
	if err := json.Unmarshal(rm, &x); err != nil {
		return nil, err
	}
	m[key] = x
	return x, nil
}

func copyRef(dst, src map[string]any, r attrRef) error {
	from, to := src, dst
	if r.ext != "" {
		if r.attr == "" {
			if obj, ok := src[r.ext]; ok {
				to[r.ext] = obj
			}
			return nil
		}
		if _, whole := dst[r.ext].(json.RawMessage); whole {
			return nil // the whole extension is already copied
		}
		x, err := decoded(src, r.ext)
		if err != nil {
			return err
		}
		obj, ok := x.(map[string]any)
		if !ok {
			return nil
		}
		from = obj
		t, ok := dst[r.ext].(map[string]any)
		if !ok {
			t = map[string]any{}
			dst[r.ext] = t
		}
		to = t
	}
	if r.sub == "" {
		if val, ok := from[r.attr]; ok {
			to[r.attr] = val
		}
		return nil
	}
	if _, whole := to[r.attr].(json.RawMessage); whole {
		return nil // the whole attribute is already copied
	}
	val, err := decoded(from, r.attr)
	if err != nil || val == nil {
		return err
	}
	switch x := val.(type) {
	case map[string]any:
		t, ok := to[r.attr].(map[string]any)
		if !ok {
			t = map[string]any{}
			to[r.attr] = t
		}
		if sv, ok := x[r.sub]; ok {
			t[r.sub] = sv
		}
	case []any:
		// Multi-valued complex: keep the sub-attribute of every value, merged
		// with sub-attributes already copied.
		prev, _ := to[r.attr].([]any)
		out := make([]any, len(x))
		for i, el := range x {
			m := map[string]any{}
			if i < len(prev) {
				if pm, ok := prev[i].(map[string]any); ok {
					m = pm
				}
			}
			if em, ok := el.(map[string]any); ok {
				if sv, ok := em[r.sub]; ok {
					m[r.sub] = sv
				}
			}
			out[i] = m
		}
		to[r.attr] = out
	}
	return nil
}

func dropRef(m map[string]any, r attrRef) error {
	if r.ext == "" && always(r.attr) {
		return nil
	}
	target := m
	if r.ext != "" {
		if r.attr == "" {
			delete(m, r.ext)
			return nil
		}
		x, err := decoded(m, r.ext)
		if err != nil {
			return err
		}
		obj, ok := x.(map[string]any)
		if !ok {
			return nil
		}
		target = obj
	}
	if r.sub == "" {
		delete(target, r.attr)
		return nil
	}
	val, err := decoded(target, r.attr)
	if err != nil {
		return err
	}
	switch x := val.(type) {
	case map[string]any:
		delete(x, r.sub)
	case []any:
		for _, el := range x {
			if em, ok := el.(map[string]any); ok {
				delete(em, r.sub)
			}
		}
	}
	return nil
}
