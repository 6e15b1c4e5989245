package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
)

// searchRequest is the body of POST /.search (RFC 7644 §3.4.3) with the RFC 9865
// cursor.
type searchRequest struct {
	Schemas            []string        `json:"schemas"`
	Attributes         json.RawMessage `json:"attributes"`
	ExcludedAttributes json.RawMessage `json:"excludedAttributes"`
	Filter             string          `json:"filter"`
	SortBy             string          `json:"sortBy"`
	SortOrder          string          `json:"sortOrder"`
	StartIndex         json.RawMessage `json:"startIndex"`
	Count              json.RawMessage `json:"count"`
	Cursor             *string         `json:"cursor"`
}

// listParams are the query parameters of a list, from the URL or a search body.
type listParams struct {
	filter, sortBy, sortOrder string
	startIndex, count         string // raw numbers, "" when absent
	cursor                    *string
	attrs, excluded           []string
}

func paramsFromQuery(r *http.Request) listParams {
	q := r.URL.Query()
	p := listParams{
		filter:     q.Get("filter"),
		sortBy:     q.Get("sortBy"),
		sortOrder:  q.Get("sortOrder"),
		startIndex: q.Get("startIndex"),
		count:      q.Get("count"),
		attrs:      q["attributes"],
		excluded:   q["excludedAttributes"],
	}
	if c, ok := q["cursor"]; ok {
		s := c[0]
		p.cursor = &s
	}
	return p
}

// stringList accepts a JSON array of strings or a comma-separated string.
func stringList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func rawNumber(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if s == "null" {
		return ""
	}
	return strings.Trim(s, `"`)
}

func paramsFromBody(raw []byte) (listParams, error) {
	if _, err := decodeObject(raw); err != nil {
		return listParams{}, err
	}
	var sr searchRequest
	if err := json.Unmarshal(raw, &sr); err != nil {
		return listParams{}, scim.BadRequest(scim.ErrTypeInvalidSyntax, "the search request is malformed")
	}
	ok := false
	for _, s := range sr.Schemas {
		if strings.EqualFold(s, scim.SchemaSearchRequest) {
			ok = true
		}
	}
	if !ok {
		return listParams{}, scim.BadRequest(scim.ErrTypeInvalidValue, "\"schemas\" must be [%q]", scim.SchemaSearchRequest)
	}
	attrs, err1 := stringList(sr.Attributes)
	excl, err2 := stringList(sr.ExcludedAttributes)
	if err1 != nil || err2 != nil {
		return listParams{}, scim.BadRequest(scim.ErrTypeInvalidValue, "attributes and excludedAttributes must be arrays of strings")
	}
	return listParams{
		filter: sr.Filter, sortBy: sr.SortBy, sortOrder: sr.SortOrder,
		startIndex: rawNumber(sr.StartIndex), count: rawNumber(sr.Count),
		cursor: sr.Cursor, attrs: attrs, excluded: excl,
	}, nil
}

// query turns list parameters into a store query. elimity gaps filled here:
// filters are compiled by scim/filter (core and extension attributes mixed,
// value paths) into store queries instead of scanned in memory; sortBy,
// sortOrder and cursors are supported; count is clamped.
func (h *handler) query(rt *scim.ResourceType, p listParams, hashes bool) (store.Query, error) {
	var q store.Query
	if strings.TrimSpace(p.filter) != "" {
		expr, err := filter.Parse(rt, p.filter, h.cfg.FilterLimits)
		if err != nil {
			return q, badFilter(err)
		}
		if err := checkFilterable(expr, hashes); err != nil {
			return q, err
		}
		q.Filter = expr
	}
	if s := strings.TrimSpace(p.sortBy); s != "" {
		path, ok := rt.ParsePath(s)
		if !ok {
			return q, scim.BadRequest(scim.ErrTypeInvalidValue, "sortBy %q names no attribute of %s", s, rt.Name)
		}
		if !filterable(path, hashes) {
			return q, scim.BadRequest(scim.ErrTypeInvalidValue, "cannot sort by %s", path)
		}
		q.SortBy = &path
	}
	switch strings.ToLower(strings.TrimSpace(p.sortOrder)) {
	case "", "ascending":
	case "descending":
		q.Descending = true
	default:
		return q, scim.BadRequest(scim.ErrTypeInvalidValue, "sortOrder must be \"ascending\" or \"descending\"")
	}
	q.Count = h.cfg.DefaultPageSize
	if p.count != "" {
		n, err := strconv.ParseInt(p.count, 10, 64)
		if err != nil {
			if !isDigits(p.count) {
				return q, scim.BadRequest(scim.ErrTypeInvalidValue, "count must be an integer")
			}
			n = int64(h.cfg.MaxPageSize) // overflows int64: clamp like any large count
		}
		// RFC 7644 §3.4.2.4: a negative count is 0; a count over the maximum is
		// clamped, not refused.
		q.Count = int(max(0, min(n, int64(h.cfg.MaxPageSize))))
	}
	if p.cursor != nil {
		q.UseCursor = true
		q.Cursor = *p.cursor
		return q, nil
	}
	q.StartIndex = 1
	if p.startIndex != "" {
		n, err := strconv.ParseInt(p.startIndex, 10, 64)
		if err != nil && !isDigits(strings.TrimPrefix(p.startIndex, "-")) {
			return q, scim.BadRequest(scim.ErrTypeInvalidValue, "startIndex must be an integer")
		}
		if err == nil && n > 1 {
			q.StartIndex = int(min(n, int64(1<<31-1)))
		}
	}
	return q, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// badFilter keeps filter-package SCIM errors (their detail describes the filter)
// and turns anything else into a plain invalidFilter.
func badFilter(err error) error {
	var se *scim.Error
	if errors.As(err, &se) && se.Status < 500 {
		return se
	}
	return scim.BadRequest(scim.ErrTypeInvalidFilter, "the filter is invalid")
}

// filterable says whether a caller may filter or sort on path: never on
// "returned: never" attributes (password), and on passwordHash only when the
// caller may read hashes — otherwise a filter would be an oracle for them.
func filterable(p scim.AttrPath, hashes bool) bool {
	for _, a := range []*scim.Attribute{p.Attr, p.Sub} {
		if a == nil {
			continue
		}
		if a.Returned == scim.ReturnedNever || a.Mutability == scim.WriteOnly {
			return false
		}
		if a.Returned == scim.ReturnedRequest && !hashes {
			return false
		}
	}
	return true
}

func checkFilterable(e filter.Expr, hashes bool) error {
	switch x := e.(type) {
	case *filter.And:
		if err := checkFilterable(x.L, hashes); err != nil {
			return err
		}
		return checkFilterable(x.R, hashes)
	case *filter.Or:
		if err := checkFilterable(x.L, hashes); err != nil {
			return err
		}
		return checkFilterable(x.R, hashes)
	case *filter.Not:
		return checkFilterable(x.X, hashes)
	case *filter.Compare:
		if !filterable(x.Path, hashes) {
			return scim.BadRequest(scim.ErrTypeInvalidFilter, "cannot filter on %s", x.Path)
		}
	case *filter.ValuePath:
		if !filterable(x.Path, hashes) {
			return scim.BadRequest(scim.ErrTypeInvalidFilter, "cannot filter on %s", x.Path)
		}
		return checkFilterable(x.Filter, hashes)
	}
	return nil
}

// list serves GET /Users, /Groups and POST .../.search (RFC 7644 §3.4.2,
// §3.4.3; RFC 9865). elimity gap: itemsPerPage is the number of resources in
// this page, not the requested count.
func (h *handler) list(w http.ResponseWriter, r *http.Request, rt *resourceType, search bool) {
	var (
		p   listParams
		err error
	)
	if search {
		raw, err := readBody(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if p, err = paramsFromBody(raw); err != nil {
			h.writeError(w, r, err)
			return
		}
	} else {
		p = paramsFromQuery(r)
	}
	proj, err := h.projectionFor(r, rt.rt, nonNil(p.attrs), nonNil(p.excluded))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	hashes := false
	// Only a filter or sort naming passwordHash needs the setting read.
	if rt.rt == scim.UserResourceType && strings.Contains(strings.ToLower(p.filter+" "+p.sortBy), "passwordhash") {
		if hashes, err = h.mayReadHashes(r.Context()); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	q, err := h.query(rt.rt, p, hashes)
	if err == nil {
		err = scopeQuery(r.Context(), &q)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	resp := scim.ListResponse{Schemas: []string{scim.SchemaListResponse}, Resources: []any{}}
	if !q.UseCursor {
		resp.StartIndex = q.StartIndex
	}
	ctx := r.Context()
	if rt.rt == scim.UserResourceType {
		page, err := h.cfg.Store.ListUsers(ctx, q)
		if err != nil {
			h.writeError(w, r, cursorError(err, q))
			return
		}
		resp.TotalResults, resp.NextCursor = page.Total, page.NextCursor
		for i := range page.Items {
			u := page.Items[i]
			h.prepareUser(&u, proj)
			v, err := proj.render(&u, rt.rt)
			if err != nil {
				h.writeError(w, r, err)
				return
			}
			resp.Resources = append(resp.Resources, v)
		}
	} else {
		q.Members = proj.wantsMembers()
		page, err := h.cfg.Store.ListGroups(ctx, q)
		if err != nil {
			h.writeError(w, r, cursorError(err, q))
			return
		}
		resp.TotalResults, resp.NextCursor = page.Total, page.NextCursor
		for i := range page.Items {
			g := page.Items[i]
			h.prepareGroup(&g, proj)
			v, err := proj.render(&g, rt.rt)
			if err != nil {
				h.writeError(w, r, err)
				return
			}
			resp.Resources = append(resp.Resources, v)
		}
	}
	resp.ItemsPerPage = len(resp.Resources)
	writeJSON(w, http.StatusOK, resp)
}

// nonNil makes an absent list explicit so projectionFor does not fall back to
// the query string for search bodies.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// cursorError reports a cursor the store refuses as invalidCursor (RFC 9865
// §3.1); an expired one stays 410 expiredCursor.
func cursorError(err error, q store.Query) error {
	if q.UseCursor && q.Cursor != "" && errors.Is(err, store.ErrInvalid) {
		return scim.BadRequest(scim.ErrTypeInvalidCursor, "the cursor is invalid")
	}
	return err
}
