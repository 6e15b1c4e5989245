package filter

import (
	"strconv"
	"strings"

	parser "github.com/scim2/filter-parser/v2"
)

// Gap filled in github.com/scim2/filter-parser/v2 (v2.3.1): its grammar for the
// text between the brackets of a value path takes one comparison, exactly two
// comparisons joined by "and" or "or", or "not (...)" of those. RFC 7644
// §3.4.2.2 allows any filter there ("valFilter" is built from attrExp, logExp
// and "not" with parentheses, like a top-level filter), and real clients send
// more: Entra removes members with
// members[value eq "a" or value eq "b" or value eq "c"], and a filter such as
// emails[type eq "work" and (value co "@x" or primary eq true)] needs
// parentheses.
//
// So the wrapped parser never sees a bracketed text. cutValueFilters replaces
// each "[...]" with a placeholder comparison the upstream grammar does take,
// "[i eq N]", and keeps the N-th text aside; the converter, on meeting a value
// path, parses that text as a filter of its own (the full filter grammar)
// resolved relative to the bracketed attribute. Nesting a value path inside
// another stays an error, as in the RFC.

// placeholderAttr is the attribute name of a placeholder comparison. Any name
// would do: every value path the upstream parser returns is a placeholder,
// because cutValueFilters leaves no bracketed text behind.
const placeholderAttr = "i"

// cutValueFilters returns s with the text inside each outermost pair of
// brackets (outside string literals) replaced by a placeholder, and those texts
// in order. It returns ok false when brackets do not pair up or a string
// literal is not closed. Text without brackets is returned as it is, without
// allocating.
func cutValueFilters(s string) (outer string, inner []string, ok bool) {
	if strings.IndexByte(s, '[') < 0 && strings.IndexByte(s, ']') < 0 {
		return s, nil, true
	}
	var b strings.Builder
	b.Grow(len(s))
	depth, start, last := 0, 0, 0
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
		case ch == '[':
			if depth == 0 {
				start = i + 1
			}
			depth++
		case ch == ']':
			depth--
			switch {
			case depth < 0:
				return "", nil, false
			case depth == 0:
				b.WriteString(s[last:start])
				b.WriteString(placeholderAttr + " eq ")
				b.WriteString(strconv.Itoa(len(inner)))
				last = i
				inner = append(inner, strings.Trim(s[start:i], " "))
			}
		}
	}
	if depth != 0 || inString {
		return "", nil, false
	}
	b.WriteString(s[last:])
	return b.String(), inner, true
}

// placeholder returns the index of the text kept aside for the value filter f
// of a value path parsed from the output of cutValueFilters.
func placeholder(f parser.Expression, inner []string) (int, bool) {
	a, ok := f.(*parser.AttributeExpression)
	if !ok || a.AttributePath.AttributeName != placeholderAttr || a.Operator != parser.EQ {
		return 0, false
	}
	n, ok := a.CompareValue.(interface{ String() string }) // json.Number
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n.String())
	if err != nil || i < 0 || i >= len(inner) {
		return 0, false
	}
	return i, true
}
