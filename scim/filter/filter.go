// Package filter parses SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths against the
// resource types of package scim, enforces size and depth limits, and compiles filters
// into parameterised SQL WHERE clauses through a Mapping supplied by a store backend.
//
// It imports package scim and github.com/scim2/filter-parser/v2 (wrapped: the parser
// knows no schema and no limits; this package adds both, parses value filters the
// parser's grammar cannot take (valuefilter.go), and reads the common filter shapes
// with a hand-written fast path that builds the parser's own AST (fast.go)).
package filter
