package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/scim"
)

// Paging picks how a listing is paged.
type Paging int

// Paging methods.
const (
	// PagingAuto uses RFC 9865 cursors when the server's ServiceProviderConfig
	// offers them, startIndex/count otherwise.
	PagingAuto Paging = iota
	// PagingIndex always pages by startIndex/count.
	PagingIndex
	// PagingCursor always pages by cursor.
	PagingCursor
)

// ListOptions selects what a listing returns.
type ListOptions struct {
	Filter             string
	Attributes         []string
	ExcludedAttributes []string
	// PageSize overrides the client's page size.
	PageSize int
	Paging   Paging
}

// ListStats describes a finished (or failed) listing.
type ListStats struct {
	// Total is the server's totalResults on the last page read (-1 if never given).
	Total int
	// Items is how many resources were passed to the callback.
	Items int
	Pages int
	// Cursor reports whether cursor paging was used.
	Cursor bool
}

// ModifiedSince returns the filter `meta.lastModified ge "t"` (RFC 3339, UTC).
// Increments built on it see the boundary instant again; callers de-duplicate.
func ModifiedSince(t time.Time) string {
	return `meta.lastModified ge "` + t.UTC().Format(time.RFC3339Nano) + `"`
}

// ListUsers pages through the users matching opts and calls fn once per page, in
// order. fn's error stops the listing and is returned. Every failure mode that
// could make the listing incomplete — a failed request after retries, an empty
// or short page before totalResults is reached, a replayed page, a looping
// cursor — returns an error wrapping ErrShortPage, ErrInconsistentPage or the
// transport error; pages already passed to fn stay passed.
func (c *Client) ListUsers(ctx context.Context, opts ListOptions, fn func([]scim.User) error) (ListStats, error) {
	return list(ctx, c, "Users", opts, func(u *scim.User) string { return u.ID }, fn)
}

// ListGroups is ListUsers for groups. Ask for ExcludedAttributes "members"
// unless members are wanted: a group may have very many.
func (c *Client) ListGroups(ctx context.Context, opts ListOptions, fn func([]scim.Group) error) (ListStats, error) {
	return list(ctx, c, "Groups", opts, func(g *scim.Group) string { return g.ID }, fn)
}

// page is one ListResponse with typed resources.
type page[T any] struct {
	TotalResults *int   `json:"totalResults"`
	StartIndex   int    `json:"startIndex"`
	ItemsPerPage int    `json:"itemsPerPage"`
	NextCursor   string `json:"nextCursor"`
	Resources    []T    `json:"Resources"`
}

// paging resolves PagingAuto by reading the ServiceProviderConfig once, and
// returns the server's maximum page size when it publishes one (0 otherwise).
func (c *Client) paging(ctx context.Context, p Paging) (cursor bool, maxPage int) {
	c.discMu.Lock()
	defer c.discMu.Unlock()
	if !c.discovered {
		spc, err := c.Discover(ctx)
		if err != nil {
			// A plain server without discovery (or a flaky one): index paging
			// is always available. Try again on the next listing.
			c.log.Debug("scim discovery failed; paging by index", "err", err)
			return p == PagingCursor, 0
		}
		c.discovered, c.cursors = true, spc.CursorPaging()
		if spc.Pagination != nil && spc.Pagination.MaxPageSize > 0 {
			c.maxPage = spc.Pagination.MaxPageSize
		}
	}
	switch p {
	case PagingIndex:
		return false, c.maxPage
	case PagingCursor:
		return true, c.maxPage
	}
	return c.cursors, c.maxPage
}

func list[T any](ctx context.Context, c *Client, path string, opts ListOptions, id func(*T) string, fn func([]T) error) (ListStats, error) {
	size := opts.PageSize
	if size <= 0 {
		size = c.cfg.PageSize
	}
	cursor, maxPage := c.paging(ctx, opts.Paging)
	serverPage := 0 // the page size the server actually serves, once known
	if maxPage > 0 {
		// The server published its limit: every page but the last must be full.
		size = min(size, maxPage)
		serverPage = size
	}

	q := url.Values{}
	if opts.Filter != "" {
		q.Set("filter", opts.Filter)
	}
	if len(opts.Attributes) > 0 {
		q.Set("attributes", strings.Join(opts.Attributes, ","))
	}
	if len(opts.ExcludedAttributes) > 0 {
		q.Set("excludedAttributes", strings.Join(opts.ExcludedAttributes, ","))
	}
	q.Set("count", strconv.Itoa(size))

	st := ListStats{Total: -1, Cursor: cursor}
	seen := make(map[string]struct{})
	firstTotal := -1
	start, next := 1, ""
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if cursor {
			q.Set("cursor", next)
			q.Del("startIndex")
		} else {
			q.Set("startIndex", strconv.Itoa(start))
		}
		var p page[T]
		if err := c.get(ctx, path, q, 0, &p); err != nil {
			return st, fmt.Errorf("list %s page %d: %w", path, st.Pages+1, err)
		}
		n := len(p.Resources)
		where := fmt.Sprintf("list %s page %d", path, st.Pages+1)
		if p.TotalResults == nil || *p.TotalResults < 0 {
			if !cursor {
				return st, fmt.Errorf("%s: %w: no totalResults", where, ErrInconsistentPage)
			}
		} else {
			st.Total = *p.TotalResults
			if firstTotal < 0 {
				firstTotal = st.Total
			}
		}
		for i := range p.Resources {
			rid := id(&p.Resources[i])
			if rid == "" {
				return st, fmt.Errorf("%s: %w: a resource without id", where, ErrInconsistentPage)
			}
			if _, dup := seen[rid]; dup {
				return st, fmt.Errorf("%s: %w: resource %s listed twice (page replayed or the listing moved)", where, ErrInconsistentPage, rid)
			}
			seen[rid] = struct{}{}
		}

		var last bool
		if cursor {
			last = p.NextCursor == ""
			switch {
			case !last && p.NextCursor == next:
				return st, fmt.Errorf("%s: %w: the cursor does not advance", where, ErrInconsistentPage)
			case !last && n == 0:
				return st, fmt.Errorf("%s: %w: an empty page with a next cursor", where, ErrShortPage)
			case last && st.Total >= 0 && st.Total == firstTotal && st.Items+n < st.Total:
				return st, fmt.Errorf("%s: %w: the listing ended after %d of %d resources", where, ErrShortPage, st.Items+n, st.Total)
			}
		} else {
			remaining := st.Total - (start - 1)
			switch {
			case n == 0 && remaining > 0:
				return st, fmt.Errorf("%s: %w: an empty page at startIndex %d, %d of %d resources listed", where, ErrShortPage, start, st.Items, st.Total)
			case n < size && n < remaining:
				// Fewer than asked and not the end: either the server serves
				// smaller pages than we ask (learnt on the first page) or this
				// page lost resources.
				if serverPage == 0 && st.Pages == 0 {
					serverPage = n
				} else if n < serverPage {
					return st, fmt.Errorf("%s: %w: %d resources at startIndex %d where %d were due (%d of %d listed)",
						where, ErrShortPage, n, start, min(serverPage, remaining), st.Items, st.Total)
				}
			}
			last = n >= remaining || n == 0
		}
		if serverPage == 0 && n >= size {
			serverPage = size
		}
		st.Pages++
		if n > 0 {
			if err := fn(p.Resources); err != nil {
				return st, err
			}
			st.Items += n
		}
		if last {
			return st, nil
		}
		start += n
		next = p.NextCursor
	}
}

// Change is one record of the Changes feed with its resource decoded: User or
// Group is set for upserts of that resource type.
type Change struct {
	Seq          int64
	ResourceType string
	ID           string
	Op           string
	Reason       string
	At           time.Time
	User         *scim.User
	Group        *scim.Group
}

// ChangesPage is one answer of the Changes feed.
type ChangesPage struct {
	Changes []Change
	// NextCursor continues the feed (DESIGN.md §3.1); it equals the cursor sent
	// when nothing happened.
	NextCursor string
}

type wireChange struct {
	Seq          int64           `json:"seq"`
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	Op           string          `json:"op"`
	Reason       string          `json:"reason"`
	At           time.Time       `json:"at"`
	Resource     json.RawMessage `json:"resource"`
}

// Changes reads the Changes feed after cursor: up to count records, waiting up
// to wait for the first one (long-poll; 0 returns at once). An empty cursor
// returns no records and the current head. Errors: ErrNoChangesFeed when the
// server has no feed, ErrExpiredCursor when the cursor is no longer served
// (run a full reconcile), ErrInconsistentPage for records out of order.
func (c *Client) Changes(ctx context.Context, cursor string, count int, wait time.Duration) (ChangesPage, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if count > 0 {
		q.Set("count", strconv.Itoa(count))
	}
	if wait > 0 {
		q.Set("wait", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	}
	var p page[wireChange]
	if err := c.get(ctx, "Changes", q, wait, &p); err != nil {
		if isNotFound(err) {
			return ChangesPage{}, fmt.Errorf("%w: %w", ErrNoChangesFeed, err)
		}
		return ChangesPage{}, err
	}
	if p.NextCursor == "" {
		return ChangesPage{}, fmt.Errorf("changes: %w: no nextCursor", ErrInconsistentPage)
	}
	out := ChangesPage{NextCursor: p.NextCursor, Changes: make([]Change, 0, len(p.Resources))}
	var prev int64
	for _, w := range p.Resources {
		if w.Seq <= prev || w.ID == "" {
			return ChangesPage{}, fmt.Errorf("changes: %w: record %d out of order or without id", ErrInconsistentPage, w.Seq)
		}
		prev = w.Seq
		ch := Change{Seq: w.Seq, ResourceType: w.ResourceType, ID: w.ID, Op: w.Op, Reason: w.Reason, At: w.At}
		if w.Op == scim.ChangeUpsert && len(w.Resource) > 0 && string(w.Resource) != "null" {
			var err error
			switch w.ResourceType {
			case "User":
				ch.User = new(scim.User)
				err = json.Unmarshal(w.Resource, ch.User)
			case "Group":
				ch.Group = new(scim.Group)
				err = json.Unmarshal(w.Resource, ch.Group)
			}
			if err != nil {
				return ChangesPage{}, fmt.Errorf("changes: record %d: %w: %w", w.Seq, ErrInconsistentPage, err)
			}
		}
		out.Changes = append(out.Changes, ch)
	}
	return out, nil
}

func isNotFound(err error) bool {
	var se *scim.Error
	return errors.As(err, &se) && se.Status == 404
}

// Count returns totalResults of resource ("Users", "Groups") for filter ("" for
// all) without listing any (count=0).
func (c *Client) Count(ctx context.Context, resource, filter string) (int, error) {
	q := url.Values{"count": {"0"}}
	if filter != "" {
		q.Set("filter", filter)
	}
	var p page[json.RawMessage]
	if err := c.get(ctx, resource, q, 0, &p); err != nil {
		return 0, err
	}
	if p.TotalResults == nil {
		return 0, fmt.Errorf("count %s: %w: no totalResults", resource, ErrInconsistentPage)
	}
	return *p.TotalResults, nil
}
