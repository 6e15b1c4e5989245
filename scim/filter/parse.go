package filter

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/connectsso/connect/scim"
	parser "github.com/scim2/filter-parser/v2"
)

// Default limits, used for the zero fields of Limits.
const (
	DefaultMaxLength = 4096
	DefaultMaxDepth  = 16
	DefaultMaxTerms  = 64
)

func (l Limits) withDefaults() Limits {
	if l.MaxLength <= 0 {
		l.MaxLength = DefaultMaxLength
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxTerms <= 0 {
		l.MaxTerms = DefaultMaxTerms
	}
	return l
}

// Path is a resolved PATCH operation path (RFC 7644 §3.5.2): "attr",
// "attr.sub", "attr[filter]" or "attr[filter].sub", each optionally prefixed with
// a schema URN.
type Path struct {
	Attr   scim.AttrPath   // the attribute; Attr.Sub is always nil
	Filter Expr            // the value filter of "attr[filter]", or nil
	Sub    *scim.Attribute // the sub-attribute after "." or "].", or nil
}

// Parse parses a SCIM filter and resolves its attribute paths against rt.
// Attribute names and schema URNs match case-insensitively. Every error is a
// *scim.Error with status 400 and scimType invalidFilter whose detail is safe to
// show to the client.
//
// Besides syntax, Parse rejects unknown attributes, attributes that are never
// returned (password), comparisons on complex attributes (except a multi-valued
// one with a "value" sub-attribute: "emails eq x" compares emails.value, and
// Parse sets Sub accordingly), ordering or substring operators on booleans and
// values of the wrong type. dateTime values become time.Time, integers int64,
// decimals float64.
func Parse(rt *scim.ResourceType, text string, lim Limits) (Expr, error) {
	return parse(rt, text, lim, true)
}

// parse is Parse, with the fast path (fast.go) on or off.
func parse(rt *scim.ResourceType, text string, lim Limits, fast bool) (Expr, error) {
	c := newConverter(rt, lim, scim.ErrTypeInvalidFilter, "filter")
	c.fullOnly = !fast
	src, err := c.precheck(text)
	if err != nil {
		return nil, err
	}
	e, err := c.filter(src, nil)
	if err != nil {
		return nil, err
	}
	if err := c.checkDepth(e); err != nil {
		return nil, err
	}
	return e, nil
}

// ParsePath parses a PATCH operation path and resolves it against rt. Unlike a
// filter, a path may name attributes that are never returned (password). Every
// error is a *scim.Error with status 400 and scimType invalidPath.
func ParsePath(rt *scim.ResourceType, text string, lim Limits) (Path, error) {
	return parsePath(rt, text, lim, true)
}

// parsePath is ParsePath, with the fast path (fast.go) on or off.
func parsePath(rt *scim.ResourceType, text string, lim Limits, fast bool) (Path, error) {
	c := newConverter(rt, lim, scim.ErrTypeInvalidPath, "path")
	c.fullOnly = !fast
	src, err := c.precheck(text)
	if err != nil {
		return Path{}, err
	}
	var raw parser.Path
	ok := false
	if fast {
		raw.AttributePath, ok = fastAttrPath(src)
	}
	var inner []string
	if !ok {
		var outer string
		if outer, inner, ok = cutValueFilters(src); !ok {
			return Path{}, c.syntaxError()
		}
		if raw, ok = parseSafely(parser.ParsePathNumber, outer); !ok {
			return Path{}, c.syntaxError()
		}
	}
	ap, err := c.resolve(raw.AttributePath)
	if err != nil {
		return Path{}, err
	}
	p := Path{Attr: ap, Sub: ap.Sub}
	p.Attr.Sub = nil
	if raw.ValueExpression == nil {
		return p, nil
	}
	if p.Sub != nil || ap.Attr.Type != scim.TypeComplex {
		return Path{}, c.errorf("%s cannot take a value filter", ap)
	}
	i, ok := placeholder(raw.ValueExpression, inner)
	if !ok {
		return Path{}, c.syntaxError()
	}
	if p.Filter, err = c.filter(inner[i], &p.Attr); err != nil {
		return Path{}, err
	}
	if err := c.checkDepth(p.Filter); err != nil {
		return Path{}, err
	}
	if raw.SubAttribute != nil {
		sub, ok := p.Attr.Attr.Sub(*raw.SubAttribute)
		if !ok {
			return Path{}, c.errorf("unknown attribute %q", clip(p.Attr.String()+"."+*raw.SubAttribute))
		}
		p.Sub = sub
	}
	return p, nil
}

// parseSafely runs the third-party parser on client input. A panic in it must not
// take the request down, so it is reported as a syntax error.
func parseSafely[T any](parse func([]byte) (T, error), src string) (v T, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	v, err := parse([]byte(src))
	return v, err == nil
}

// converter turns the parser's AST into ours, validating as it goes.
type converter struct {
	rt    *scim.ResourceType
	lim   Limits
	kind  string // scimType of errors
	what  string // "filter" or "path", for error details
	terms int
	// fullOnly turns the fast path off (fast.go), for the tests that compare
	// the two.
	fullOnly bool
}

func newConverter(rt *scim.ResourceType, lim Limits, kind, what string) *converter {
	return &converter{rt: rt, lim: lim.withDefaults(), kind: kind, what: what}
}

func (c *converter) errorf(format string, args ...any) *scim.Error {
	return scim.BadRequest(c.kind, format, args...)
}

func (c *converter) syntaxError() *scim.Error {
	return c.errorf("invalid %s syntax", c.what)
}

// filter parses and converts the filter text src; scope is the attribute of the
// value path src is the value filter of, or nil at the top level. Value filters
// are cut out before the upstream parser runs (see cutValueFilters).
func (c *converter) filter(src string, scope *scim.AttrPath) (Expr, error) {
	if !c.fullOnly {
		if raw, ok := fastFilter(src); ok {
			return c.expr(raw, scope, nil)
		}
	}
	outer, inner, ok := cutValueFilters(src)
	if !ok || outer == "" {
		return nil, c.syntaxError()
	}
	raw, ok := parseSafely(parser.ParseFilterNumber, outer)
	if !ok {
		return nil, c.syntaxError()
	}
	return c.expr(raw, scope, inner)
}

// precheck rejects oversized, malformed or deeply nested text before the parser
// sees it, so that hostile input costs a scan and nothing more.
func (c *converter) precheck(text string) (string, error) {
	if len(text) > c.lim.MaxLength {
		return "", c.errorf("%s is longer than %d bytes", c.what, c.lim.MaxLength)
	}
	text = strings.Trim(text, " ")
	if text == "" {
		return "", c.errorf("%s is empty", c.what)
	}
	if !utf8.ValidString(text) {
		return "", c.errorf("%s is not valid UTF-8", c.what)
	}
	if textDepth(text) > c.lim.MaxDepth {
		return "", c.errorf("%s is nested deeper than %d levels", c.what, c.lim.MaxDepth)
	}
	return text, nil
}

// textDepth is the deepest nesting of parentheses and brackets outside string
// literals.
func textDepth(s string) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case inString:
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
		case ch == '"':
			inString = true
		case ch == '(' || ch == '[':
			depth++
			deepest = max(deepest, depth)
		case ch == ')' || ch == ']':
			depth--
		}
	}
	return deepest
}

func (c *converter) checkDepth(e Expr) error {
	if nesting(e, nil) > c.lim.MaxDepth {
		return c.errorf("%s is nested deeper than %d levels", c.what, c.lim.MaxDepth)
	}
	return nil
}

// nesting counts how often the expression alternates between and, or, not and
// value paths: a flat "a or b or c" is one level however long it is.
func nesting(e, parent Expr) int {
	switch e := e.(type) {
	case *And:
		_, same := parent.(*And)
		return max(nesting(e.L, e), nesting(e.R, e)) + b2i(!same)
	case *Or:
		_, same := parent.(*Or)
		return max(nesting(e.L, e), nesting(e.R, e)) + b2i(!same)
	case *Not:
		return 1 + nesting(e.X, e)
	case *ValuePath:
		return 1 + nesting(e.Filter, e)
	}
	return 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// expr converts e. Inside a value path scope is the attribute in brackets and
// attribute names are its sub-attributes. inner holds the value filter texts
// cut out of the text e was parsed from.
func (c *converter) expr(e parser.Expression, scope *scim.AttrPath, inner []string) (Expr, error) {
	switch e := e.(type) {
	case *parser.LogicalExpression:
		l, err := c.expr(e.Left, scope, inner)
		if err != nil {
			return nil, err
		}
		r, err := c.expr(e.Right, scope, inner)
		if err != nil {
			return nil, err
		}
		if e.Operator == parser.AND {
			return &And{L: l, R: r}, nil
		}
		return &Or{L: l, R: r}, nil
	case *parser.NotExpression:
		x, err := c.expr(e.Expression, scope, inner)
		if err != nil {
			return nil, err
		}
		return &Not{X: x}, nil
	case *parser.AttributeExpression:
		var p scim.AttrPath
		if scope == nil {
			var err error
			if p, err = c.resolve(e.AttributePath); err != nil {
				return nil, err
			}
		} else {
			ap := e.AttributePath
			sub, ok := scope.Attr.Sub(ap.AttributeName)
			if ap.URIPrefix != nil || ap.SubAttribute != nil || !ok {
				return nil, c.errorf("unknown attribute %q in %s[...]", clip(ap.String()), scope)
			}
			p = scim.AttrPath{Schema: scope.Schema, Attr: scope.Attr, Sub: sub}
		}
		return c.compare(p, string(e.Operator), e.CompareValue)
	case *parser.ValuePath:
		if scope != nil {
			return nil, c.errorf("value filters cannot be nested")
		}
		p, err := c.resolve(e.AttributePath)
		if err != nil {
			return nil, err
		}
		if p.Sub != nil || p.Attr.Type != scim.TypeComplex {
			return nil, c.errorf("%s cannot take a value filter", p)
		}
		i, ok := placeholder(e.ValueFilter, inner)
		if !ok {
			return nil, c.syntaxError()
		}
		f, err := c.filter(inner[i], &p)
		if err != nil {
			return nil, err
		}
		return &ValuePath{Path: p, Filter: f}, nil
	}
	return nil, c.syntaxError()
}

// resolve resolves a parsed attribute path against the resource type.
func (c *converter) resolve(ap parser.AttributePath) (scim.AttrPath, error) {
	uri := ap.URI()
	p, ok := c.rt.Resolve(uri, ap.AttributeName, ap.SubAttributeName())
	if !ok && uri != "" && strings.EqualFold(uri, c.rt.Schema.ID) {
		// Common attributes (id, externalId, meta) belong to no schema but may
		// still be written with the core URN.
		p, ok = c.rt.Resolve("", ap.AttributeName, ap.SubAttributeName())
	}
	if !ok {
		return scim.AttrPath{}, c.errorf("unknown attribute %q", clip(ap.String()))
	}
	return p, nil
}

// compare validates one comparison and converts its value.
func (c *converter) compare(p scim.AttrPath, op string, v any) (Expr, error) {
	if c.terms++; c.terms > c.lim.MaxTerms {
		return nil, c.errorf("%s has more than %d comparisons", c.what, c.lim.MaxTerms)
	}
	if p.Attr.Returned == scim.ReturnedNever || p.Target().Returned == scim.ReturnedNever {
		return nil, c.errorf("%s cannot be filtered", p)
	}
	op = strings.ToLower(op)
	if v == nil {
		// "x eq null" is "not (x pr)" and "x ne null" is "x pr", for any x.
		if op != OpPr && op != OpEq && op != OpNe {
			return nil, c.errorf("null can only be compared with eq or ne")
		}
		return &Compare{Path: p, Op: op}, nil
	}
	if p.Sub == nil && p.Attr.Type == scim.TypeComplex && p.Attr.MultiValued {
		if sub, ok := p.Attr.Sub("value"); ok {
			p.Sub = sub
		}
	}
	if p.Target().Type == scim.TypeComplex {
		return nil, c.errorf("%s is complex: compare one of its sub-attributes", p)
	}
	if s, ok := v.(string); ok && needsDecoding(s) {
		// The parser checks JSON string syntax but keeps the escapes.
		if err := json.Unmarshal([]byte(`"`+s+`"`), &s); err != nil {
			return nil, c.syntaxError()
		}
		v = s
	}
	val, err := c.value(p, op, v)
	if err != nil {
		return nil, err
	}
	return &Compare{Path: p, Op: op, Value: val}, nil
}

// needsDecoding reports whether s, the text between the quotes of a string
// literal, differs from its JSON decoding: it holds an escape (or a control
// character, which JSON refuses and the grammar never lets through).
func needsDecoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' || s[i] < 0x20 {
			return true
		}
	}
	return false
}

// value checks that op and v suit the attribute's type and converts v.
func (c *converter) value(p scim.AttrPath, op string, v any) (any, error) {
	a := p.Target()
	ordering := op == OpGt || op == OpLt || op == OpGe || op == OpLe
	substring := op == OpCo || op == OpSw || op == OpEw
	switch a.Type {
	case scim.TypeBoolean:
		if ordering || substring {
			return nil, c.errorf("%s cannot be used on boolean attribute %s", op, p)
		}
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, c.errorf("%s needs true or false", p)
	case scim.TypeDateTime:
		if substring {
			return nil, c.errorf("%s cannot be used on dateTime attribute %s", op, p)
		}
		if s, ok := v.(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t, nil
			}
		}
		return nil, c.errorf("%s needs an RFC 3339 dateTime string", p)
	case scim.TypeInteger, scim.TypeDecimal:
		if substring {
			return nil, c.errorf("%s cannot be used on number attribute %s", op, p)
		}
		n, ok := v.(json.Number)
		if !ok {
			return nil, c.errorf("%s needs a number", p)
		}
		if a.Type == scim.TypeInteger {
			if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
				return i, nil
			}
			return nil, c.errorf("%s needs an integer", p)
		}
		if f, err := strconv.ParseFloat(string(n), 64); err == nil && !math.IsInf(f, 0) {
			return f, nil
		}
		return nil, c.errorf("%s needs a number", p)
	case scim.TypeBinary:
		if ordering {
			return nil, c.errorf("%s cannot be used on binary attribute %s", op, p)
		}
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return nil, c.errorf("%s needs a string", p)
}

// clip shortens client text echoed in an error detail.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	for i := n; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}
