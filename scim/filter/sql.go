package filter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/scim"
)

// Mapping tells the compiler where a resource type's attributes live in SQL. A store
// backend supplies it; the compiler never guesses a column.
type Mapping interface {
	// Column returns the SQL expression of a single-valued attribute or of a
	// sub-attribute of a single-valued complex attribute (e.g. "u.given_name" for
	// name.givenName), or false when the path is not filterable.
	Column(p scim.AttrPath) (string, bool)
	// Multi returns the frame of a multi-valued attribute (emails, members, groups,
	// connect interests ...), or false when it is not filterable.
	Multi(p scim.AttrPath) (MultiFrame, bool)
}

// MultiFrame describes a multi-valued attribute stored as child rows. The compiler
// emits "EXISTS (SELECT 1 FROM <From> WHERE <Where> AND (<condition on Columns>))",
// one EXISTS per value path so that all conditions of "emails[type eq "work" and
// value co "x"]" hold on the same row.
type MultiFrame struct {
	From    string            // e.g. "user_values v"
	Where   string            // correlation, e.g. "v.user_pk = u.pk AND v.attr = 'emails'"
	Columns map[string]string // lower-case sub-attribute name → column ("value" → "v.value")
	Default string            // sub-attribute used when none is named ("emails eq x"): "value"
	// Key and Ref, when both are set, turn the frame into a semi-join: the
	// compiler emits "<Key> IN (SELECT <Ref> FROM <From> WHERE <Where> AND
	// (<condition>))" and Where holds only the frame's own restriction (e.g.
	// "v.attr = 'emails'"), not the correlation. SQLite plans that form from
	// the child table's index, where a correlated EXISTS scans every parent row.
	Key string // parent column, e.g. "u.pk"
	Ref string // child column equal to Key, e.g. "v.user_pk"
}

// correlated returns f's Where including the correlation of a Key/Ref frame.
func (f MultiFrame) correlated() string {
	if f.Key == "" || f.Ref == "" {
		return f.Where
	}
	if f.Where == "" {
		return f.Ref + " = " + f.Key
	}
	return f.Ref + " = " + f.Key + " AND (" + f.Where + ")"
}

// Dialect holds what differs between SQL engines.
type Dialect struct {
	// Placeholder returns the n-th (1-based) bind parameter: "?" or "$n"
	// (QuestionMark, DollarN); nil means QuestionMark.
	Placeholder func(n int) string
	// TimeArg converts a dateTime literal to the stored representation (e.g.
	// UnixMicro int64); nil keeps time.Time.
	TimeArg func(v any) any
	// BoolArg converts a boolean literal to the stored representation; nil keeps bool.
	BoolArg func(b bool) any
}

// QuestionMark is a Dialect.Placeholder for engines that number nothing (SQLite).
func QuestionMark(int) string { return "?" }

// DollarN is a Dialect.Placeholder for PostgreSQL: "$1", "$2", ...
func DollarN(n int) string { return "$" + strconv.Itoa(n) }

// SQL compiles e into a parameterised WHERE fragment. Values only ever travel as
// bind arguments, numbered from firstArg so that the caller can put its own
// arguments first; column names only come from m.
//
// Strings compare case-insensitively (lower() on both sides) unless the attribute
// is caseExact; co, sw and ew use LIKE with %, _ and \ escaped. "ne" also matches
// an absent value; "eq null" means absent and "ne null" present; "not" matches
// whenever its operand does not, absent values included. A comparison on a
// multi-valued attribute matches when one of its values does, and a value path
// requires all its conditions to hold on the same value.
//
// It returns a *scim.Error (400 invalidFilter) when m refuses a path, and a plain
// error for an expression Parse cannot produce.
func SQL(e Expr, m Mapping, d Dialect, firstArg int) (where string, args []any, err error) {
	if d.Placeholder == nil {
		d.Placeholder = QuestionMark
	}
	c := &compiler{m: m, d: d, next: firstArg}
	where, err = c.expr(e)
	if err != nil {
		return "", nil, err
	}
	return where, c.args, nil
}

// OrderBy returns the SQL expression to sort by p (RFC 7644 §3.4.2.3). Strings that
// are not caseExact sort by lower(). A multi-valued attribute sorts by its primary
// value, else its least value; a frame's "primary" column must be usable as a
// condition (boolean on PostgreSQL, 0/1 on SQLite). It returns a *scim.Error (400
// invalidValue) when p cannot be sorted by.
func OrderBy(p scim.AttrPath, m Mapping) (string, error) {
	unsortable := func() error {
		return scim.BadRequest(scim.ErrTypeInvalidValue, "attribute %s cannot be sorted by", p)
	}
	if p.Attr.Returned == scim.ReturnedNever || p.Target().Returned == scim.ReturnedNever {
		return "", unsortable()
	}
	if !p.Attr.MultiValued {
		col, ok := m.Column(p)
		if !ok || p.Target().Type == scim.TypeComplex {
			return "", unsortable()
		}
		return sortKey(col, p.Target()), nil
	}
	f, ok := m.Multi(scim.AttrPath{Schema: p.Schema, Attr: p.Attr})
	if !ok {
		return "", unsortable()
	}
	col, target, ok := frameColumn(f, p)
	if !ok {
		return "", unsortable()
	}
	key := sortKey(col, target)
	from := f.From + whereClause(f.correlated(), "")
	if primary, ok := f.Columns["primary"]; ok {
		return "(SELECT " + key + " FROM " + from + " ORDER BY CASE WHEN " + primary + " THEN 0 ELSE 1 END, " + key + " LIMIT 1)", nil
	}
	return "(SELECT min(" + key + ") FROM " + from + ")", nil
}

func sortKey(col string, a *scim.Attribute) string {
	if folds(a) {
		return "lower(" + col + ")"
	}
	return col
}

// folds reports whether a compares case-insensitively.
func folds(a *scim.Attribute) bool {
	return (a.Type == scim.TypeString || a.Type == scim.TypeReference) && !a.CaseExact
}

// stringish reports whether a is stored as text, where the empty string counts
// as absent.
func stringish(a *scim.Attribute) bool {
	switch a.Type {
	case scim.TypeString, scim.TypeReference, scim.TypeBinary:
		return true
	}
	return false
}

// frameColumn finds the column of p's sub-attribute (or the frame's default) in f,
// and the attribute that column holds.
func frameColumn(f MultiFrame, p scim.AttrPath) (string, *scim.Attribute, bool) {
	name, target := f.Default, p.Attr
	if p.Sub != nil {
		name, target = p.Sub.Name, p.Sub
	} else if p.Attr.Type == scim.TypeComplex {
		sub, ok := p.Attr.Sub(f.Default)
		if !ok {
			return "", nil, false
		}
		target = sub
	}
	col, ok := f.Columns[strings.ToLower(name)]
	return col, target, ok && col != ""
}

// whereClause renders " WHERE (w) AND (cond)", leaving out empty parts.
func whereClause(w, cond string) string {
	switch {
	case w != "" && cond != "":
		return " WHERE (" + w + ") AND (" + cond + ")"
	case w != "":
		return " WHERE " + w
	case cond != "":
		return " WHERE " + cond
	}
	return ""
}

func exists(f MultiFrame, cond string) string {
	if f.Key != "" && f.Ref != "" {
		return f.Key + " IN (SELECT " + f.Ref + " FROM " + f.From + whereClause(f.Where, cond) + ")"
	}
	return "EXISTS (SELECT 1 FROM " + f.From + whereClause(f.Where, cond) + ")"
}

type compiler struct {
	m     Mapping
	d     Dialect
	next  int // number of the next placeholder
	args  []any
	frame *MultiFrame // inside a value path on a multi-valued attribute
}

func refuse(p scim.AttrPath) error {
	return scim.BadRequest(scim.ErrTypeInvalidFilter, "attribute %s cannot be filtered", p)
}

// arg binds v and returns its placeholder.
func (c *compiler) arg(v any) string {
	c.args = append(c.args, v)
	c.next++
	return c.d.Placeholder(c.next - 1)
}

func (c *compiler) expr(e Expr) (string, error) {
	switch e := e.(type) {
	case *And:
		return c.chain(" AND ", operands(e, nil))
	case *Or:
		return c.chain(" OR ", operands(e, nil))
	case *Not:
		x, err := c.expr(e.X)
		if err != nil {
			return "", err
		}
		return not(x), nil
	case *Compare:
		return c.compare(e)
	case *ValuePath:
		return c.valuePath(e)
	}
	return "", fmt.Errorf("filter: cannot compile %T", e)
}

// not negates x. A comparison on an absent value is NULL in SQL, and NOT NULL is
// NULL again, which would make "not (active eq false)" miss users without active;
// "IS NOT TRUE" (SQLite and PostgreSQL) matches whenever x does not.
func not(x string) string { return "(" + x + ") IS NOT TRUE" }

// operands flattens a chain of the same operator: "a and b and c" → [a b c].
func operands(e Expr, dst []Expr) []Expr {
	switch x := e.(type) {
	case *And:
		for _, y := range []Expr{x.L, x.R} {
			if _, same := y.(*And); same {
				dst = operands(y, dst)
			} else {
				dst = append(dst, y)
			}
		}
		return dst
	case *Or:
		for _, y := range []Expr{x.L, x.R} {
			if _, same := y.(*Or); same {
				dst = operands(y, dst)
			} else {
				dst = append(dst, y)
			}
		}
		return dst
	}
	return append(dst, e)
}

func (c *compiler) chain(sep string, xs []Expr) (string, error) {
	parts := make([]string, len(xs))
	for i, x := range xs {
		s, err := c.expr(x)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	return "(" + strings.Join(parts, sep) + ")", nil
}

func (c *compiler) valuePath(v *ValuePath) (string, error) {
	if c.frame != nil {
		return "", errors.New("filter: nested value path")
	}
	if !v.Path.Attr.MultiValued {
		// name[givenName eq "x"]: the inner paths are plain columns.
		return c.expr(v.Filter)
	}
	f, ok := c.m.Multi(scim.AttrPath{Schema: v.Path.Schema, Attr: v.Path.Attr})
	if !ok {
		return "", refuse(v.Path)
	}
	c.frame = &f
	defer func() { c.frame = nil }()
	cond, err := c.expr(v.Filter)
	if err != nil {
		return "", err
	}
	return exists(f, cond), nil
}

func (c *compiler) compare(x *Compare) (string, error) {
	p := x.Path
	if x.Value == nil && x.Op != OpPr {
		present, err := c.compare(&Compare{Path: p, Op: OpPr})
		switch {
		case err != nil:
			return "", err
		case x.Op == OpEq:
			return not(present), nil
		case x.Op == OpNe:
			return present, nil
		}
		return "", fmt.Errorf("filter: %s null", x.Op)
	}
	switch {
	case c.frame != nil:
		col, target, ok := frameColumn(*c.frame, p)
		if !ok {
			return "", refuse(p)
		}
		return c.cond(col, target, x)
	case p.Attr.MultiValued:
		attr := scim.AttrPath{Schema: p.Schema, Attr: p.Attr}
		f, ok := c.m.Multi(attr)
		if !ok {
			return "", refuse(attr)
		}
		if x.Op == OpPr && p.Sub == nil {
			return exists(f, ""), nil
		}
		col, target, ok := frameColumn(f, p)
		if !ok {
			return "", refuse(p)
		}
		cond, err := c.cond(col, target, x)
		if err != nil {
			return "", err
		}
		return exists(f, cond), nil
	case x.Op == OpPr && p.Target().Type == scim.TypeComplex:
		return c.complexPresent(p)
	}
	col, ok := c.m.Column(p)
	if !ok {
		return "", refuse(p)
	}
	return c.cond(col, p.Target(), x)
}

// complexPresent is "name pr": any filterable sub-attribute is present.
func (c *compiler) complexPresent(p scim.AttrPath) (string, error) {
	var parts []string
	for i := range p.Attr.SubAttributes {
		sub := &p.Attr.SubAttributes[i]
		sp := scim.AttrPath{Schema: p.Schema, Attr: p.Attr, Sub: sub}
		if col, ok := c.m.Column(sp); ok && sub.Returned != scim.ReturnedNever {
			s, _ := c.cond(col, sub, &Compare{Path: sp, Op: OpPr})
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "", refuse(p)
	}
	return "(" + strings.Join(parts, " OR ") + ")", nil
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// cond is the condition of x on column col holding attribute a.
func (c *compiler) cond(col string, a *scim.Attribute, x *Compare) (string, error) {
	if x.Op == OpPr {
		if stringish(a) {
			return "(" + col + " IS NOT NULL AND " + col + " <> '')", nil
		}
		return col + " IS NOT NULL", nil
	}
	var v any
	switch val := x.Value.(type) {
	case string, int64, float64:
		v = val
	case bool:
		v = val
		if c.d.BoolArg != nil {
			v = c.d.BoolArg(val)
		}
	case time.Time:
		v = val
		if c.d.TimeArg != nil {
			v = c.d.TimeArg(val)
		}
	default:
		return "", fmt.Errorf("filter: cannot compare with %T", x.Value)
	}
	s, isString := x.Value.(string)
	fold := isString && folds(a)
	side := func(s string) string {
		if fold {
			return "lower(" + s + ")"
		}
		return s
	}
	switch x.Op {
	case OpEq:
		return side(col) + " = " + side(c.arg(v)), nil
	case OpNe:
		return "(" + col + " IS NULL OR " + side(col) + " <> " + side(c.arg(v)) + ")", nil
	case OpGt:
		return side(col) + " > " + side(c.arg(v)), nil
	case OpGe:
		return side(col) + " >= " + side(c.arg(v)), nil
	case OpLt:
		return side(col) + " < " + side(c.arg(v)), nil
	case OpLe:
		return side(col) + " <= " + side(c.arg(v)), nil
	case OpCo, OpSw, OpEw:
		if !isString {
			return "", fmt.Errorf("filter: %s needs a string", x.Op)
		}
		if fold {
			pattern := likeEscaper.Replace(s)
			switch x.Op {
			case OpCo:
				pattern = "%" + pattern + "%"
			case OpSw:
				pattern += "%"
			case OpEw:
				pattern = "%" + pattern
			}
			return side(col) + " LIKE " + side(c.arg(pattern)) + ` ESCAPE '\'`, nil
		}
		return c.exactSubstring(col, x.Op, s), nil
	}
	return "", fmt.Errorf("filter: unknown operator %q", x.Op)
}

// exactSubstring is a case-sensitive co, sw or ew. LIKE cannot do it portably
// (SQLite's LIKE ignores ASCII case), so it is spelled with functions that
// SQLite and PostgreSQL share.
func (c *compiler) exactSubstring(col, op, s string) string {
	if s == "" {
		return col + " IS NOT NULL"
	}
	switch op {
	case OpSw:
		return "substr(" + col + ", 1, length(" + c.arg(s) + ")) = " + c.arg(s)
	case OpEw:
		return "substr(" + col + ", length(" + col + ") - length(" + c.arg(s) + ") + 1) = " + c.arg(s)
	}
	return "replace(" + col + ", " + c.arg(s) + ", '') <> " + col
}
