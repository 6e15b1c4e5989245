package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
)

// ApplyGroup applies ops to g, which arrives without its members. Operations on
// displayName, externalId and the Connect kind change g; operations on members
// are folded, in order, into m (which may already hold changes), so the store can
// apply them row by row:
//
//   - add members (value: a list of {value, ...})             → m.Add
//   - remove members[value eq "id"] (or an "or" of such terms) → m.Remove
//   - remove members with a value list (Entra ID)              → m.Remove
//   - remove members without value                             → m.RemoveAll
//   - replace members                                          → m.Replace
//
// Any other filter on members is 400 invalidFilter. On success g and m are
// updated; on error both are left unchanged. Errors are *scim.Error.
func ApplyGroup(g *scim.Group, m *store.MemberOps, ops []Operation) error {
	if len(ops) > MaxOperations {
		return scim.BadRequest(scim.ErrTypeInvalidSyntax, "at most %d operations per request", MaxOperations)
	}
	members := g.Members
	g2 := *g
	g2.Members = nil
	doc, err := toDoc(&g2)
	if err != nil {
		return err
	}
	ms := newMemberSet(m)
	e := &engine{rt: scim.GroupResourceType, doc: doc, hook: ms.hook}
	for i, op := range ops {
		if err := e.apply(op); err != nil {
			return opError(i, err)
		}
	}
	if err := e.finish(); err != nil {
		return err
	}
	var out scim.Group
	if err := fromDoc(e.doc, &out); err != nil {
		return err
	}
	if err := out.NormalizeKind(); err != nil {
		return err
	}
	out.Members = members
	out.SetSchemas()
	*g = out
	*m = ms.ops()
	return nil
}

// memberSet folds a sequence of membership operations into one MemberOps whose
// Add and Remove are disjoint, so the store's order (Replace, then Remove, then
// Add) gives the same result as applying the operations one by one. Every step is
// O(1) per member.
type memberSet struct {
	cleared  bool // the existing members are gone (replace or remove-all)
	replaced bool // ... by a replace (else by a remove-all)
	adds     []scim.Member
	addIdx   map[string]int // value → index in adds; removed adds are zeroed
	removes  []string
	rmIdx    map[string]int // value → index in removes
}

func newMemberSet(m *store.MemberOps) *memberSet {
	s := &memberSet{addIdx: map[string]int{}, rmIdx: map[string]int{}}
	switch {
	case m.Replace != nil:
		s.replace(*m.Replace)
	case m.RemoveAll:
		s.removeAll()
	}
	for _, id := range m.Remove {
		s.remove(id)
	}
	for _, mb := range m.Add {
		s.add(mb)
	}
	return s
}

// grow makes room for n more adds (Entra sends thousands in one operation).
func (s *memberSet) grow(n int) {
	s.adds = slices.Grow(s.adds, n)
	if len(s.addIdx) == 0 && n > 8 {
		s.addIdx = make(map[string]int, n)
	}
}

func (s *memberSet) add(mb scim.Member) {
	if i, ok := s.rmIdx[mb.Value]; ok {
		s.removes[i] = ""
		delete(s.rmIdx, mb.Value)
	}
	if i, ok := s.addIdx[mb.Value]; ok {
		s.adds[i] = mb
		return
	}
	s.addIdx[mb.Value] = len(s.adds)
	s.adds = append(s.adds, mb)
}

func (s *memberSet) remove(id string) {
	if i, ok := s.addIdx[id]; ok {
		s.adds[i] = scim.Member{}
		delete(s.addIdx, id)
	}
	if s.cleared {
		return
	}
	if _, ok := s.rmIdx[id]; !ok {
		s.rmIdx[id] = len(s.removes)
		s.removes = append(s.removes, id)
	}
}

func (s *memberSet) removeAll() {
	s.cleared, s.replaced = true, false
	s.adds, s.removes = nil, nil
	clear(s.addIdx)
	clear(s.rmIdx)
}

func (s *memberSet) replace(list []scim.Member) {
	s.removeAll()
	s.replaced = true
	s.grow(len(list))
	for _, mb := range list {
		s.add(mb)
	}
}

// ops returns the folded MemberOps.
func (s *memberSet) ops() store.MemberOps {
	adds := make([]scim.Member, 0, len(s.addIdx))
	for _, mb := range s.adds {
		if mb.Value != "" {
			adds = append(adds, mb)
		}
	}
	var m store.MemberOps
	switch {
	case s.cleared && s.replaced:
		m.Replace = &adds
		return m
	case s.cleared:
		m.RemoveAll = true
	default:
		for _, id := range s.removes {
			if id != "" {
				m.Remove = append(m.Remove, id)
			}
		}
	}
	if len(adds) > 0 {
		m.Add = adds
	}
	return m
}

// hook handles every operation whose target is the members attribute.
func (s *memberSet) hook(op string, t target, raw json.RawMessage) (bool, error) {
	if t.attr == nil || t.schema != scim.GroupSchema || t.attr.Name != "members" {
		return false, nil
	}
	if t.sub != nil {
		return true, scim.BadRequest(scim.ErrTypeInvalidPath, "members sub-attributes cannot be patched; add or remove the member")
	}
	if t.filter != nil {
		if op != OpRemove {
			return true, scim.BadRequest(scim.ErrTypeInvalidFilter, "a members filter is only supported with remove")
		}
		ids, ok := memberIDs(t.filter, nil)
		if !ok {
			return true, scim.BadRequest(scim.ErrTypeInvalidFilter, `members filters must be value eq "id", optionally joined with or`)
		}
		for _, id := range ids {
			s.remove(id)
		}
		return true, nil
	}
	switch op {
	case OpAdd:
		list, err := decodeMembers(raw)
		if err != nil {
			return true, err
		}
		s.grow(len(list))
		for _, mb := range list {
			s.add(mb)
		}
	case OpReplace:
		list, err := decodeMembers(raw)
		if err != nil {
			return true, err
		}
		s.replace(list)
	case OpRemove:
		if isNull(raw) {
			s.removeAll()
			return true, nil
		}
		list, err := decodeMembers(raw)
		if err != nil {
			return true, err
		}
		if len(list) == 0 { // "value": [] removes nothing, not everything
			return true, nil
		}
		for _, mb := range list {
			s.remove(mb.Value)
		}
	}
	return true, nil
}

// memberIDs collects the ids of a filter made only of `value eq "id"` terms joined
// by or.
func memberIDs(f filter.Expr, ids []string) ([]string, bool) {
	switch x := f.(type) {
	case *filter.Or:
		ids, ok := memberIDs(x.L, ids)
		if !ok {
			return nil, false
		}
		return memberIDs(x.R, ids)
	case *filter.Compare:
		a := x.Path.Sub
		if a == nil {
			a = x.Path.Attr
		}
		id, ok := x.Value.(string)
		if a == nil || a.Name != "value" || x.Op != filter.OpEq || !ok || id == "" {
			return nil, false
		}
		return append(ids, id), true
	}
	return nil, false
}

// memberIn is one member as a client sends it.
type memberIn struct {
	Value   string `json:"value"`
	Ref     string `json:"$ref"`
	Display string `json:"display"`
	Type    string `json:"type"`
}

// decodeMembers parses a members value: a list of member objects, a single object,
// or null (no members). Values must be non-empty strings.
func decodeMembers(raw json.RawMessage) ([]scim.Member, error) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, nil
	}
	var in []memberIn
	var err error
	switch raw[0] {
	case '[':
		err = json.Unmarshal(raw, &in)
	case '{':
		in = make([]memberIn, 1)
		err = json.Unmarshal(raw, &in[0])
	default:
		return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "members must be a list of {\"value\": id} objects")
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "members must be a list of {\"value\": id} objects")
		}
		return nil, scim.BadRequest(scim.ErrTypeInvalidSyntax, "members value is not valid JSON")
	}
	out := make([]scim.Member, 0, len(in))
	for _, mb := range in {
		if mb.Value == "" {
			return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "every member needs a value (the member's id)")
		}
		if mb.Type != "" {
			i := slices.IndexFunc([]string{"User", "Group"}, func(s string) bool { return strings.EqualFold(s, mb.Type) })
			if i < 0 {
				return nil, scim.BadRequest(scim.ErrTypeInvalidValue, "member type must be User or Group")
			}
			mb.Type = []string{"User", "Group"}[i]
		}
		out = append(out, scim.Member{Value: mb.Value, Ref: mb.Ref, Display: mb.Display, Type: mb.Type})
	}
	return out, nil
}
