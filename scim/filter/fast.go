package filter

import (
	"encoding/json"
	"unicode/utf8"

	parser "github.com/scim2/filter-parser/v2"
)

// The fast path. The wrapped parser (a PEG built from parser combinators)
// spends 50–80 µs and ~1,700 allocations on `userName eq "bjensen"`, which
// alone would eat a core at the 5,000 requests/s the hub must serve. Nearly
// every filter real clients send is one comparison or a few joined by "and" or
// "or", so fastFilter reads exactly that shape by hand:
//
//	filter = term *( 1*SP ("and" / "or") 1*SP term )   ; "and" binds tighter
//	term   = attrPath 1*SP "pr" / attrPath 1*SP compareOp 1*SP value
//	value  = "true" / "false" / "null" / integer / string without "\"
//
// and builds the very AST the wrapped parser builds for it (same node types,
// same left-associative trees, json.Number for integers, the operator in lower
// case), so that the one converter handles both. Anything else — parentheses,
// "not", value paths, escapes, decimals, odd spacing — and anything the fast
// path is unsure of returns ok false and goes to the full parser. It is only
// ever allowed to say "no"; FuzzFastPath checks that whatever it accepts the
// full parser accepts with an identical AST.

// fastFilter parses s, already trimmed of spaces, when it has the common shape.
func fastFilter(s string) (parser.Expression, bool) {
	f := fastScanner{s: s}
	var or, and parser.Expression
	for {
		t, ok := f.term()
		if !ok {
			return nil, false
		}
		and = join(and, t, parser.AND)
		if f.i == len(f.s) {
			return join(or, and, parser.OR), true
		}
		if !f.spaces() {
			return nil, false
		}
		switch {
		case f.keyword("and"):
		case f.keyword("or"):
			or, and = join(or, and, parser.OR), nil
		default:
			return nil, false
		}
		if !f.spaces() {
			return nil, false
		}
	}
}

// fastAttrPath parses s, already trimmed of spaces, when it is a plain
// attribute path (a PATCH path without a value filter).
func fastAttrPath(s string) (parser.AttributePath, bool) {
	f := fastScanner{s: s}
	p, ok := f.attrPath()
	return p, ok && f.i == len(s)
}

// join is "l op r", or r alone when l is nil.
func join(l, r parser.Expression, op parser.LogicalOperator) parser.Expression {
	if l == nil {
		return r
	}
	return &parser.LogicalExpression{Left: l, Right: r, Operator: op}
}

type fastScanner struct {
	s string
	i int
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isURNChar is a character of a URN segment in the wrapped parser's grammar.
func isURNChar(c byte) bool { return isAlpha(c) || isDigit(c) || c == '-' || c == '.' }

// spaces skips one or more spaces.
func (f *fastScanner) spaces() bool {
	start := f.i
	for f.i < len(f.s) && f.s[f.i] == ' ' {
		f.i++
	}
	return f.i > start
}

// atEnd reports whether the token just read ends here: at the end of the text
// or before a space. A keyword or literal glued to more text ("prx", "truex",
// "01") is left to the full parser.
func (f *fastScanner) atEnd() bool { return f.i == len(f.s) || f.s[f.i] == ' ' }

// keyword reads kw (lower case) in any case, followed by a space or the end.
func (f *fastScanner) keyword(kw string) bool {
	if len(f.s)-f.i < len(kw) {
		return false
	}
	for j := 0; j < len(kw); j++ {
		if f.s[f.i+j]|0x20 != kw[j] {
			return false
		}
	}
	f.i += len(kw)
	if !f.atEnd() {
		f.i -= len(kw)
		return false
	}
	return true
}

func (f *fastScanner) term() (*parser.AttributeExpression, bool) {
	p, ok := f.attrPath()
	if !ok || !f.spaces() || len(f.s)-f.i < 2 {
		return nil, false
	}
	op := parser.CompareOperator(lower2(f.s[f.i], f.s[f.i+1]))
	f.i += 2
	if !f.atEnd() {
		return nil, false
	}
	switch op {
	case parser.PR:
		return &parser.AttributeExpression{AttributePath: p, Operator: parser.PR}, true
	case parser.EQ, parser.NE, parser.CO, parser.SW, parser.EW, parser.GT, parser.LT, parser.GE, parser.LE:
	default:
		return nil, false
	}
	if !f.spaces() {
		return nil, false
	}
	v, ok := f.value()
	if !ok {
		return nil, false
	}
	return &parser.AttributeExpression{AttributePath: p, Operator: op, CompareValue: v}, true
}

// lower2 is the two-byte operator in lower case, or "" when it is not letters.
func lower2(a, b byte) string {
	if !isAlpha(a) || !isAlpha(b) {
		return ""
	}
	a, b = a|0x20, b|0x20
	for _, op := range [...]string{"eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le", "pr"} {
		if op[0] == a && op[1] == b {
			return op // a constant: no allocation
		}
	}
	return ""
}

// attrPath reads [URN ":"] name ["." name]. A URN is one or more segments of
// letters, digits, "-" and "." each followed by ":"; the attribute name follows
// the last ":" of the path.
func (f *fastScanner) attrPath() (parser.AttributePath, bool) {
	var p parser.AttributePath
	end := f.i
	lastColon := -1
	for end < len(f.s) && f.s[end] != ' ' {
		c := f.s[end]
		switch {
		case c == ':':
			if end == f.i || f.s[end-1] == ':' {
				return p, false // empty segment
			}
			lastColon = end
		case isURNChar(c), c == '$' || c == '_':
		default:
			return p, false // brackets, parentheses, quotes, ...
		}
		end++
	}
	if lastColon >= 0 {
		for j := f.i; j < lastColon; j++ {
			if c := f.s[j]; c != ':' && !isURNChar(c) {
				return p, false
			}
		}
		uri := f.s[f.i:lastColon]
		p.URIPrefix = &uri
		f.i = lastColon + 1
	}
	name, ok := f.attrName(end)
	if !ok {
		return p, false
	}
	p.AttributeName = name
	if f.i < end && f.s[f.i] == '.' {
		f.i++
		sub, ok := f.attrName(end)
		if !ok {
			return p, false
		}
		p.SubAttribute = &sub
	}
	return p, f.i == end
}

// attrName reads ["$"] ALPHA *("-" / "_" / DIGIT / ALPHA), stopping before end.
func (f *fastScanner) attrName(end int) (string, bool) {
	start := f.i
	if f.i < end && f.s[f.i] == '$' {
		f.i++
	}
	if f.i >= end || !isAlpha(f.s[f.i]) {
		return "", false
	}
	for f.i++; f.i < end; f.i++ {
		if c := f.s[f.i]; !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' {
			break
		}
	}
	return f.s[start:f.i], true
}

// value reads true, false, null, an integer or a string without escapes.
func (f *fastScanner) value() (any, bool) {
	if f.i == len(f.s) {
		return nil, false
	}
	switch c := f.s[f.i]; {
	case c == '"':
		return f.str()
	case c == '-' || isDigit(c):
		return f.integer()
	case f.keyword("true"):
		return true, true
	case f.keyword("false"):
		return false, true
	case f.keyword("null"):
		return nil, true
	}
	return nil, false
}

// str reads a string literal that has no escapes and no control characters;
// its content is then its value, which the converter's JSON decoding leaves
// unchanged.
func (f *fastScanner) str() (any, bool) {
	start := f.i + 1
	for j := start; j < len(f.s); {
		c := f.s[j]
		switch {
		case c == '"':
			f.i = j + 1
			if !f.atEnd() {
				return nil, false
			}
			return f.s[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		case c < utf8.RuneSelf:
			j++
		default:
			r, n := utf8.DecodeRuneInString(f.s[j:])
			if r == utf8.RuneError && n == 1 {
				return nil, false
			}
			j += n
		}
	}
	return nil, false
}

// integer reads -?(0|[1-9][0-9]*); the wrapped parser returns it as json.Number.
func (f *fastScanner) integer() (any, bool) {
	start := f.i
	if f.s[f.i] == '-' {
		f.i++
	}
	if f.i == len(f.s) || !isDigit(f.s[f.i]) {
		return nil, false
	}
	if f.s[f.i] == '0' {
		f.i++
	} else {
		for f.i < len(f.s) && isDigit(f.s[f.i]) {
			f.i++
		}
	}
	if !f.atEnd() {
		return nil, false // a fraction, an exponent or a leading zero
	}
	return json.Number(f.s[start:f.i]), true
}
