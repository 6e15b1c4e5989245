package patch

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
)

// Match reports whether one value of a multi-valued complex attribute (such as
// {"type":"work","value":"a@example.com"}) satisfies the value filter e, whose
// paths are relative to the attribute (filter.ValuePath semantics). Strings
// compare case-insensitively unless the sub-attribute is caseExact. It evaluates
// the few values of one resource in memory; directory queries never come here.
func Match(e filter.Expr, value map[string]any) bool { return matchValue(e, value) }

// matchValue evaluates e against one value: a map for complex attributes or a
// primitive for simple multi-valued ones.
func matchValue(e filter.Expr, v any) bool {
	switch x := e.(type) {
	case *filter.And:
		return matchValue(x.L, v) && matchValue(x.R, v)
	case *filter.Or:
		return matchValue(x.L, v) || matchValue(x.R, v)
	case *filter.Not:
		return !matchValue(x.X, v)
	case *filter.Compare:
		a := x.Path.Sub
		var got any
		if m, ok := v.(map[string]any); ok {
			if a == nil {
				a = x.Path.Attr
			}
			if a == nil {
				return false
			}
			got = lookup(m, a.Name)
		} else {
			if a != nil { // a sub-attribute of a primitive value
				return false
			}
			a, got = x.Path.Attr, v
			if a == nil {
				return false
			}
		}
		return compare(a, x.Op, got, x.Value)
	}
	// RFC 7644 §3.4.2.2: value paths do not nest.
	return false
}

// lookup finds key in m, exactly or else case-insensitively.
func lookup(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// compare evaluates "got op want" for attribute a.
func compare(a *scim.Attribute, op string, got, want any) bool {
	op = strings.ToLower(op)
	if op == filter.OpPr {
		return !empty(got)
	}
	if got == nil {
		switch op {
		case filter.OpEq:
			return want == nil
		case filter.OpNe:
			return want != nil
		}
		return false
	}
	if want == nil {
		return op == filter.OpNe
	}
	if l, ok := got.([]any); ok { // a multi-valued sub-attribute: any value
		for _, g := range l {
			if compare(a, op, g, want) {
				return true
			}
		}
		return false
	}
	c, ok := order(a, got, want)
	if !ok {
		return op == filter.OpNe
	}
	switch op {
	case filter.OpEq:
		return c == 0
	case filter.OpNe:
		return c != 0
	case filter.OpGt:
		return c > 0 && !isBool(want)
	case filter.OpGe:
		return c >= 0 && !isBool(want)
	case filter.OpLt:
		return c < 0 && !isBool(want)
	case filter.OpLe:
		return c <= 0 && !isBool(want)
	case filter.OpCo, filter.OpSw, filter.OpEw:
		g, okg := got.(string)
		w, okw := want.(string)
		if !okg || !okw {
			return false
		}
		if !a.CaseExact {
			g, w = strings.ToLower(g), strings.ToLower(w)
		}
		switch op {
		case filter.OpCo:
			return strings.Contains(g, w)
		case filter.OpSw:
			return strings.HasPrefix(g, w)
		default:
			return strings.HasSuffix(g, w)
		}
	}
	return false
}

// order compares a stored value with a filter literal: -1, 0 or 1, and false when
// they are of different kinds.
func order(a *scim.Attribute, got, want any) (int, bool) {
	switch w := want.(type) {
	case string:
		g, ok := got.(string)
		if !ok {
			return 0, false
		}
		if a.Type == scim.TypeDateTime {
			if tg, err := time.Parse(time.RFC3339Nano, g); err == nil {
				if tw, err := time.Parse(time.RFC3339Nano, w); err == nil {
					return tg.Compare(tw), true
				}
			}
		}
		if !a.CaseExact {
			g, w = strings.ToLower(g), strings.ToLower(w)
		}
		return strings.Compare(g, w), true
	case bool:
		var g bool
		switch x := got.(type) {
		case bool:
			g = x
		case string: // "True" written by Entra before normalisation
			switch strings.ToLower(x) {
			case "true":
				g = true
			case "false":
			default:
				return 0, false
			}
		default:
			return 0, false
		}
		if g == w {
			return 0, true
		}
		return 1, true // only eq/ne are meaningful for booleans
	case time.Time:
		g, ok := got.(string)
		if !ok {
			return 0, false
		}
		tg, err := time.Parse(time.RFC3339Nano, g)
		if err != nil {
			return 0, false
		}
		return tg.Compare(w), true
	case int64:
		return numOrder(got, float64(w))
	case float64:
		return numOrder(got, w)
	}
	return 0, false
}

func numOrder(got any, w float64) (int, bool) {
	var g float64
	switch x := got.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, false
		}
		g = f
	case float64:
		g = x
	default:
		return 0, false
	}
	switch {
	case g < w:
		return -1, true
	case g > w:
		return 1, true
	}
	return 0, true
}
