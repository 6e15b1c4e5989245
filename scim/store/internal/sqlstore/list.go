package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
)

// listSpec describes one resource table for listing.
type listSpec struct {
	table string // "users u"
	name  string // "users"
	alias string // "u"
	cols  string // selected columns before pk and the sort key
	// more, when set, writes further selected columns (", …") after cols;
	// they may depend on the query's scope.
	more    func(b *builder, sc *store.Scope)
	m       *mapping
	notNull map[string]bool // sort columns that are never NULL
	counter string          // store_meta key counting the rows
	buckets string          // the table counting rows per pk block (migration 5)
}

var usersSpec = listSpec{
	table: "users u", name: "users", alias: "u", counter: "users", buckets: "user_buckets",
	cols: "u.id, u.doc, u.version, u.created, u.modified",
	more: func(b *builder, sc *store.Scope) {
		b.w(", ")
		scopedGroupsAgg(b, "u", sc)
	},
	notNull: map[string]bool{"u.id": true, "u.user_name": true, "u.created": true, "u.modified": true},
}

var groupsSpec = listSpec{
	table: "groups g", name: "groups", alias: "g", counter: "groups", buckets: "group_buckets",
	cols:    groupCols,
	notNull: map[string]bool{"g.id": true, "g.display_name": true, "g.created": true, "g.modified": true},
}

// maxIDs bounds Query.IDs (bind parameters of one statement).
const maxIDs = 1000

// fewRows is the match count up to which a filtered page is sorted rather
// than read in index order (see orderBy).
const fewRows = 10000

// sortKey is how a listing is ordered: expr ascending or descending, then pk.
type sortKey struct {
	expr    string // "" for pk order
	isInt   bool
	notNull bool
	desc    bool
	sig     string // identifies the order inside cursors
}

func (s *Store) sortKey(spec *listSpec, q *store.Query) (sortKey, error) {
	if q.SortBy == nil {
		// Insertion order: pk. Not meta.created, which the store's clock sets
		// and which need not grow with pk (a clock stepped back, PostgreSQL
		// replicas with different clocks, concurrent transactions). pk order
		// is what the per-block counts of migration 5 describe, which makes
		// a deep index page cheap (see list). Cursors of the former (created,
		// pk) order carry the signature "created" and are refused as invalid
		// (400 invalidCursor): a client restarts its walk.
		return sortKey{sig: "pk"}, nil
	}
	p := *q.SortBy
	k := sortKey{desc: q.Descending, sig: strings.ToLower(p.String())}
	if q.Descending {
		k.sig += " desc"
	}
	t := p.Target()
	if col, ok := spec.m.Column(p); ok {
		k.notNull = spec.notNull[col]
		switch t.Type {
		case scim.TypeBoolean, scim.TypeDateTime, scim.TypeInteger:
			k.expr, k.isInt = col, true
		default:
			k.expr = col
			if !t.CaseExact {
				k.expr = "lower(" + col + ")"
			}
		}
		return k, nil
	}
	// A multi-valued attribute sorts by its primary (else first) value.
	unsortable := func() (sortKey, error) {
		return sortKey{}, fmt.Errorf("%w: %w", store.ErrInvalid,
			scim.BadRequest(scim.ErrTypeInvalidValue, "attribute %s cannot be sorted by", p))
	}
	ms, ok := spec.m.sortMulti[strings.ToLower(attrPath(p.Schema, p.Attr, nil).String())]
	if !ok || !p.Attr.MultiValued {
		return unsortable()
	}
	sub := "value"
	if p.Sub != nil {
		sub = strings.ToLower(p.Sub.Name)
	} else if p.Attr.Type == scim.TypeComplex {
		if t, ok = p.Attr.Sub("value"); !ok {
			return unsortable() // addresses: no value to sort by
		}
	}
	col, ok := ms.cols[sub]
	if !ok || t.Type == scim.TypeComplex {
		return unsortable()
	}
	if t.Type == scim.TypeBoolean {
		k.isInt = true
	} else if !t.CaseExact && (t.Type == scim.TypeString || t.Type == scim.TypeReference) {
		col = "lower(" + col + ")"
	}
	k.expr = "(SELECT " + col + " " + ms.from + " " + ms.order + " LIMIT 1)"
	return k, nil
}

// cursor is the decoded form of an RFC 9865 cursor: the sort signature and the
// last row's sort key and pk.
type cursor struct {
	Sig  string `json:"s"`
	Null bool   `json:"n,omitempty"`
	Key  any    `json:"k,omitempty"`
	PK   int64  `json:"p"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(text string, k sortKey) (cursor, error) {
	bad := fmt.Errorf("%w: invalid cursor", store.ErrInvalid)
	if len(text) > 4096 {
		return cursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return cursor{}, bad
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var c cursor
	if err := dec.Decode(&c); err != nil || dec.More() || c.Sig != k.sig || c.PK <= 0 {
		return cursor{}, bad
	}
	switch {
	case k.expr == "" || c.Null:
		if c.Key != nil || (c.Null && (k.expr == "" || k.notNull)) {
			return cursor{}, bad
		}
	case k.isInt:
		n, ok := c.Key.(json.Number)
		if !ok {
			return cursor{}, bad
		}
		i, err := n.Int64()
		if err != nil {
			return cursor{}, bad
		}
		c.Key = i
	default:
		if _, ok := c.Key.(string); !ok {
			return cursor{}, bad
		}
	}
	return c, nil
}

// where writes the WHERE clause of q's filter, scope and ids (and of the
// cursor position when after is set) to b; it writes "1=1" when there is
// nothing to filter.
func (s *Store) where(b *builder, spec *listSpec, q *store.Query, k sortKey, after *cursor) error {
	e, sc := q.Filter, q.Scope
	b.w(" WHERE 1=1")
	if spec.counter == "users" {
		scopeUsers(b, spec.alias, sc)
	} else {
		scopeGroupIDs(b, spec.alias+".id", sc)
	}
	if q.IDs != nil {
		b.w(" AND ", spec.alias, ".id IN ").in(q.IDs)
	}
	if e != nil {
		cond, args, err := filter.SQL(e, spec.m, s.d.Filter, len(b.args)+1)
		if err != nil {
			return fmt.Errorf("%w: %w", store.ErrInvalid, err)
		}
		b.w(" AND (", cond, ")")
		b.args = append(b.args, args...)
	}
	if after == nil {
		return nil
	}
	pk := spec.alias + ".pk"
	cmp := ">"
	if k.desc {
		cmp = "<"
	}
	switch {
	case k.expr == "":
		b.w(" AND ", pk, " ", cmp, " ", b.arg(after.PK))
	case k.notNull:
		b.w(" AND (", k.expr, ", ", pk, ") ", cmp, " (", b.arg(after.Key), ", ", b.arg(after.PK), ")")
	case after.Null:
		b.w(" AND ", k.expr, " IS NULL AND ", pk, " ", cmp, " ", b.arg(after.PK))
	default:
		b.w(" AND (", k.expr, " IS NULL OR ", k.expr, " ", cmp, " ", b.arg(after.Key),
			" OR (", k.expr, " = ", b.arg(after.Key), " AND ", pk, " ", cmp, " ", b.arg(after.PK), "))")
	}
	return nil
}

// orderBy returns the ORDER BY clause. few says the filter matches few rows:
// the pk is then written "+pk", which keeps SQLite's planner from walking the
// whole table in pk order (to skip a sort) instead of searching the filter's
// index — the right trade for a selective range filter such as
// "meta.lastModified ge" on a large directory.
func (k sortKey) orderBy(alias string, few bool) string { return k.orderByDir(alias, few, false) }

// orderByDir is orderBy, or with reverse the exact reverse of that order
// (unassigned values first, then every key and the pk descending where they
// were ascending), which reads a deep page from the far end (see list).
func (k sortKey) orderByDir(alias string, few, reverse bool) string {
	dir := ""
	if k.desc != reverse {
		dir = " DESC"
	}
	pk := alias + ".pk" + dir
	switch {
	case k.expr == "" && few:
		return " ORDER BY +" + pk
	case k.expr == "":
		return " ORDER BY " + pk
	case k.notNull && k.isInt && few:
		return " ORDER BY +" + k.expr + dir + ", " + pk
	case k.notNull:
		return " ORDER BY " + k.expr + dir + ", " + pk
	default:
		// Unassigned values sort last in both directions.
		nulls := "(CASE WHEN " + k.expr + " IS NULL THEN 1 ELSE 0 END)"
		if reverse {
			nulls += " DESC"
		}
		return " ORDER BY " + nulls + ", " + k.expr + dir + ", " + pk
	}
}

// list runs the count and page queries of q. row is called for each row with
// the row's columns already scanned into dest (spec.cols order). With reversed
// true the rows came last first: the caller reverses its page.
//
// An OFFSET costs a step per skipped row (SQLite and PostgreSQL alike). An
// unfiltered listing in the default order therefore starts a deep page
// (offset ≥ one pk block) from the block that holds its position, found by
// adding up the per-block counts of migration 5, and skips fewer rows than a
// block holds (see deepPage). Any other index paging past the middle of a
// listing reads the page from the far end in the reverse order instead:
// startIndex 999,901 of 1,000,000 skips 0 rows rather than 999,900; the
// deepest such page sits in the middle.
func (s *Store) list(ctx context.Context, spec *listSpec, q store.Query, dest func() []any, row func(pk int64)) (total int, next string, reversed bool, err error) {
	if q.Count < 0 {
		return 0, "", false, fmt.Errorf("%w: negative count", store.ErrInvalid)
	}
	k, err := s.sortKey(spec, &q)
	if err != nil {
		return 0, "", false, err
	}
	var after *cursor
	if q.UseCursor && q.Cursor != "" {
		c, err := decodeCursor(q.Cursor, k)
		if err != nil {
			return 0, "", false, err
		}
		after = &c
	}
	if q.IDs != nil && len(q.IDs) == 0 {
		return 0, "", false, nil
	}
	if len(q.IDs) > maxIDs {
		return 0, "", false, fmt.Errorf("%w: more than %d ids", store.ErrInvalid, maxIDs)
	}
	// A filter that matches at most one resource, or a list of ids the page
	// has room for, needs no COUNT when the page starts at the first match:
	// the page holds them all (see countless).
	countless := q.Count > 0 && after == nil && q.StartIndex <= 1 &&
		(atMostOne(q.Filter) || (q.IDs != nil && len(q.IDs) <= q.Count))
	switch {
	case countless:
		total = fewRows // only steers orderBy; set from the page below
	case q.Filter == nil && q.Scope == nil && q.IDs == nil:
		// Kept by every create and delete (see journal).
		err = s.r.QueryRowContext(bounded(ctx), s.q(`SELECT value FROM store_meta WHERE key = ?`), spec.counter).Scan(&total)
	default:
		cb := s.newBuilder()
		cb.w("SELECT COUNT(*) FROM ", spec.table)
		if err := s.where(cb, spec, &q, k, nil); err != nil {
			return 0, "", false, err
		}
		err = s.r.QueryRowContext(ctx, cb.String(), cb.args...).Scan(&total)
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("count: %w", err)
	}
	if q.Count == 0 || total == 0 {
		return total, "", false, nil
	}
	b, reversed, empty, err := s.pageQuery(spec, &q, k, after, total, countless)
	if err != nil || empty {
		return total, "", false, err
	}
	pageCtx := ctx
	if countless {
		// A unique match or a bounded list of ids: a short lookup.
		pageCtx = bounded(ctx)
	}
	rows, err := s.r.QueryContext(pageCtx, b.String(), b.args...)
	if err != nil {
		return 0, "", false, fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	n := 0
	var last cursor
	for rows.Next() {
		n++
		if n > q.Count {
			next = encodeCursor(last)
			break
		}
		var pk int64
		var key any
		d := append(dest(), &pk, &key)
		if err := rows.Scan(d...); err != nil {
			return 0, "", false, fmt.Errorf("list: %w", err)
		}
		last = cursor{Sig: k.sig, PK: pk}
		if k.expr != "" {
			if key == nil {
				last.Null = true
			} else {
				last.Key = normKey(key, k.isInt)
			}
		}
		row(pk)
	}
	if err := rows.Err(); err != nil {
		return 0, "", false, fmt.Errorf("list: %w", err)
	}
	if countless {
		total = n
	}
	return total, next, reversed, nil
}

// pageQuery builds list's page query: q's page of the listing that has total
// rows, in order k, after the cursor position when one is given. reversed
// says the rows come last first; empty that the page is past the end and
// needs no query.
func (s *Store) pageQuery(spec *listSpec, q *store.Query, k sortKey, after *cursor, total int, countless bool) (b *builder, reversed, empty bool, err error) {
	offset := 0
	if !q.UseCursor && q.StartIndex > 1 {
		offset = q.StartIndex - 1
	}
	if offset >= total && !countless {
		return nil, false, true, nil
	}
	b = s.newBuilder()
	deep := !q.UseCursor && q.Filter == nil && q.Scope == nil && q.IDs == nil && k.expr == "" && offset >= 1<<bucketShift
	if deep {
		s.deepPage(b, spec, offset)
	}
	keyCol := "NULL"
	if k.expr != "" {
		keyCol = k.expr
	}
	b.w("SELECT ", spec.cols)
	if spec.more != nil {
		spec.more(b, q.Scope)
	}
	b.w(", ", spec.alias, ".pk, ", keyCol, " FROM ", spec.table)
	if err := s.where(b, spec, q, k, after); err != nil {
		return nil, false, false, err
	}
	limit := q.Count
	if q.UseCursor {
		limit++ // one more row tells whether there is a next page
	}
	if deep {
		b.w(" AND ", spec.alias, ".pk >= (SELECT pk FROM start)")
		offset = 0
	} else if !countless && !q.UseCursor && offset > total/2 {
		reversed = true
		limit = min(limit, total-offset)
		offset = total - offset - limit
	}
	b.w(k.orderByDir(spec.alias, (q.Filter != nil || q.Scope != nil || q.IDs != nil) && total <= fewRows, reversed))
	b.w(" LIMIT ", b.arg(limit))
	if offset > 0 {
		b.w(" OFFSET ", b.arg(offset))
	}
	return b, reversed, false, nil
}

// deepPage writes to b the WITH clause that finds where the default-order
// page at offset starts: "start", the pk of the row at that position, or no
// row when the listing is shorter. It adds up the live rows of the pk blocks
// in pk order (a few hundred tiny rows for a million users) to find the one
// block whose rows span the position, then skips the rows of that block
// before it: fewer than 4096 steps, reading pks only (SQLite steps through
// the table's rowid b-tree, PostgreSQL through the pk index). The caller's
// page query reads from that pk on. It is one statement, so the counts and
// the rows are one snapshot and the page is exact whatever commits meanwhile.
func (s *Store) deepPage(b *builder, spec *listSpec, offset int) {
	b.w("WITH c AS (SELECT bucket, n, SUM(n) OVER (ORDER BY bucket) AS upto FROM ", spec.buckets, "), ",
		"blk AS (SELECT CAST(bucket AS BIGINT) << ", fmt.Sprint(bucketShift), " AS lo, CAST(", b.arg(offset), " - (upto - n) AS BIGINT) AS skip",
		" FROM c WHERE upto > ", b.arg(offset), " AND upto - n <= ", b.arg(offset), "), ",
		"start AS (SELECT pk FROM ", spec.name, " WHERE pk >= (SELECT lo FROM blk) ORDER BY pk LIMIT 1 OFFSET COALESCE((SELECT skip FROM blk), 0)) ")
}

// atMostOne reports whether e can match at most one resource: it requires an
// equality on a single-valued attribute that is unique across the server (id,
// userName; the store enforces both, userName case-insensitively like the
// comparison). Such filters are what provisioning clients send before almost
// every write (Entra and Okta look users up by userName).
func atMostOne(e filter.Expr) bool {
	switch x := e.(type) {
	case *filter.And:
		return atMostOne(x.L) || atMostOne(x.R)
	case *filter.Compare:
		a := x.Path.Target()
		return x.Op == filter.OpEq && x.Value != nil && x.Path.Sub == nil && !a.MultiValued &&
			(a.Uniqueness == "server" || a.Uniqueness == "global")
	}
	return false
}

// normKey converts a scanned sort key to the JSON-friendly cursor form.
func normKey(v any, isInt bool) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case int32:
		return int64(x)
	case bool:
		if isInt {
			return b01(x)
		}
	}
	return v
}

// ListUsers implements store.Store. A user's groups come in its row
// (groupsAgg), so a page is one statement.
func (s *Store) ListUsers(ctx context.Context, q store.Query) (store.Page[scim.User], error) {
	spec := usersSpec
	spec.m = s.users
	var page store.Page[scim.User]
	var id string
	var doc sql.RawBytes // decoded in the row callback, before the next row
	var groups sql.NullString
	var version, created, modified int64
	var derr error
	total, next, reversed, err := s.list(ctx, &spec, q,
		func() []any { return []any{&id, &doc, &version, &created, &modified, &groups} },
		func(int64) {
			u, err := decodeUser(id, doc, version, created, modified)
			if err != nil && derr == nil {
				derr = err
			}
			u.Groups = parseGroups(groups.String)
			page.Items = append(page.Items, u)
		})
	if err == nil {
		err = derr
	}
	if err != nil {
		return store.Page[scim.User]{}, fmt.Errorf("list users: %w", err)
	}
	if reversed {
		slices.Reverse(page.Items)
	}
	page.Total, page.NextCursor = total, next
	return page, nil
}

// ListGroups implements store.Store.
func (s *Store) ListGroups(ctx context.Context, q store.Query) (store.Page[scim.Group], error) {
	spec := groupsSpec
	spec.m = s.groups
	var page store.Page[scim.Group]
	var pks []int64
	var gpk, version, created, modified int64
	var g scim.Group
	var ext, kind sql.NullString
	total, next, reversed, err := s.list(ctx, &spec, q,
		func() []any {
			g = scim.Group{}
			return []any{&gpk, &g.ID, &g.DisplayName, &ext, &kind, &version, &created, &modified}
		},
		func(pk int64) {
			g.ExternalID = ext.String
			if kind.String != "" {
				g.Connect = &scim.ConnectGroup{Kind: kind.String}
			}
			g.SetSchemas()
			g.Meta = &scim.Meta{ResourceType: "Group", Created: fromMicro(created), LastModified: fromMicro(modified), Version: scim.ETag(version)}
			page.Items = append(page.Items, g)
			pks = append(pks, pk)
		})
	if err != nil {
		return store.Page[scim.Group]{}, fmt.Errorf("list groups: %w", err)
	}
	if reversed {
		slices.Reverse(page.Items)
		slices.Reverse(pks)
	}
	page.Total, page.NextCursor = total, next
	if q.Members && len(pks) > 0 {
		ms, err := s.groupMembers(ctx, s.r, pks, q.Scope)
		if err != nil {
			return store.Page[scim.Group]{}, fmt.Errorf("list groups: %w", err)
		}
		for i := range page.Items {
			page.Items[i].Members = ms[pks[i]]
			if page.Items[i].Members == nil {
				page.Items[i].Members = []scim.Member{}
			}
		}
	}
	return page, nil
}
