package filter

import "github.com/connectsso/connect/scim"

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
}

// Dialect holds what differs between SQL engines.
type Dialect struct {
	// Placeholder returns the n-th (1-based) bind parameter: "?" or "$n".
	Placeholder func(n int) string
	// TimeArg converts a dateTime literal to the stored representation (e.g.
	// UnixMicro int64); nil keeps time.Time.
	TimeArg func(v any) any
	// BoolArg converts a boolean literal to the stored representation; nil keeps bool.
	BoolArg func(b bool) any
}
