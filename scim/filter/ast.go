package filter

import "github.com/connectsso/connect/scim"

// Expr is a parsed filter whose attribute paths are resolved against a resource
// type: one of *And, *Or, *Not, *Compare, *ValuePath.
type Expr interface{ expr() }

// Comparison operators (RFC 7644 §3.4.2.2), lower case.
const (
	OpEq = "eq"
	OpNe = "ne"
	OpCo = "co"
	OpSw = "sw"
	OpEw = "ew"
	OpGt = "gt"
	OpLt = "lt"
	OpGe = "ge"
	OpLe = "le"
	OpPr = "pr"
)

// And is "L and R".
type And struct{ L, R Expr }

// Or is "L or R".
type Or struct{ L, R Expr }

// Not is "not (X)".
type Not struct{ X Expr }

// Compare is "path op value" or "path pr". Value is a string, bool, float64,
// int64, time.Time (dateTime attributes) or nil (the JSON null; always nil for
// pr). When a comparison names a multi-valued complex attribute alone ("emails eq
// x"), Parse sets Path.Sub to its "value" sub-attribute.
type Compare struct {
	Path  scim.AttrPath
	Op    string
	Value any
}

// ValuePath is "attr[filter]" on a multi-valued complex attribute. Paths inside
// Filter are resolved relative to Attr: their Attr is Path.Attr and Sub the
// sub-attribute compared.
type ValuePath struct {
	Path   scim.AttrPath
	Filter Expr
}

func (*And) expr()       {}
func (*Or) expr()        {}
func (*Not) expr()       {}
func (*Compare) expr()   {}
func (*ValuePath) expr() {}

// Limits bound what a client may send. Zero fields take the defaults.
type Limits struct {
	MaxLength int // bytes of filter text; default 4096
	MaxDepth  int // nesting of ( and [, and of and/or/not/[] in the parsed tree; default 16
	MaxTerms  int // comparisons; default 64
}
