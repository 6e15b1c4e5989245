package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// changeRecord is one Changes feed entry on the wire.
type changeRecord struct {
	Schemas []string `json:"schemas"`
	scim.Change
}

// changesPoll is how often a long-polling Changes request looks for news.
const changesPoll = 100 * time.Millisecond

var errBadCursor = scim.BadRequest(scim.ErrTypeInvalidCursor, "the cursor is invalid")

// changes serves GET /Changes?cursor=C&count=N[&wait=S] (DESIGN.md §3.1): journal
// entries after C with the current resource for upserts, and nextCursor. Without
// a cursor it returns no entries and the current head, where a client starts
// after a full reconcile. The cursor is the journal sequence number; clients
// treat it as opaque.
func (h *handler) changes(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	count := h.cfg.DefaultPageSize
	if s := q.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil && !isDigits(s) {
			h.writeError(w, r, scim.BadRequest(scim.ErrTypeInvalidValue, "count must be an integer"))
			return
		}
		if err != nil {
			n = h.cfg.MaxPageSize
		}
		count = max(0, min(n, h.cfg.MaxPageSize))
	}
	var wait time.Duration
	if s := q.Get("wait"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			h.writeError(w, r, scim.BadRequest(scim.ErrTypeInvalidValue, "wait must be a number of seconds"))
			return
		}
		wait = min(time.Duration(n)*time.Second, MaxWait)
	}

	head, err := h.cfg.Store.JournalHead(ctx)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	resp := scim.ListResponse{Schemas: []string{scim.SchemaListResponse}, Resources: []any{}}
	sc := scopeFrom(ctx)
	cursor := strings.TrimSpace(q.Get("cursor"))
	if cursor == "" {
		resp.NextCursor = scopedCursor(sc, head)
		writeJSON(w, http.StatusOK, resp)
		return
	}
	after, expired, err := parseCursor(sc, cursor)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if expired {
		h.writeError(w, r, fmt.Errorf("the client's scope changed: %w", store.ErrExpiredCursor))
		return
	}
	if after > head {
		// A cursor from the future: the journal was restored or reset. Only a
		// full reconcile can make the client consistent again.
		h.writeError(w, r, store.ErrExpiredCursor)
		return
	}

	var entries []store.JournalEntry
	next := after
	deadline := time.Now().Add(wait)
	for {
		if count > 0 {
			entries, err = h.cfg.Store.Journal(ctx, next, count)
			if err != nil {
				h.writeError(w, r, err)
				return
			}
			if len(entries) > 0 {
				next = entries[len(entries)-1].Seq
			}
			if sc != nil && len(entries) > 0 {
				// A page the scope empties still moves the cursor on.
				if entries, err = h.scopeEntries(ctx, sc, entries); err != nil {
					h.writeError(w, r, err)
					return
				}
			}
		}
		if len(entries) > 0 || wait == 0 || !time.Now().Before(deadline) || count == 0 {
			break
		}
		t := time.NewTimer(changesPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			h.writeError(w, r, ctx.Err())
			return
		case <-t.C:
		}
	}

	cache := map[string]any{}
	hashes := false
	if len(entries) > 0 {
		if hashes, err = h.mayReadHashes(ctx); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	for _, e := range entries {
		c := scim.Change{Seq: e.Seq, ResourceType: e.ResourceType, ID: e.ID, Op: e.Op, Reason: e.Reason, At: e.At}
		if c.Op == scim.ChangeUpsert {
			res, err := h.changeResource(ctx, cache, e, hashes)
			switch {
			case errors.Is(err, store.ErrNotFound):
				// Deleted since: report the state the client must reach.
				c.Op, c.Reason = scim.ChangeRemove, scim.ReasonDeleted
			case err != nil:
				h.writeError(w, r, err)
				return
			default:
				c.Resource = res
			}
		}
		resp.Resources = append(resp.Resources, changeRecord{Schemas: []string{scim.SchemaChange}, Change: c})
	}
	resp.TotalResults = len(resp.Resources)
	resp.ItemsPerPage = len(resp.Resources)
	resp.NextCursor = scopedCursor(sc, next)
	writeJSON(w, http.StatusOK, resp)
}

// changeResource loads the current state of a changed resource once per page.
// Groups come without members: a bridge reads members of the groups it syncs
// separately, so one change to a 100,000-member group stays a small record.
func (h *handler) changeResource(ctx context.Context, cache map[string]any, e store.JournalEntry, hashes bool) (any, error) {
	key := e.ResourceType + "/" + e.ID
	if v, ok := cache[key]; ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v, nil
	}
	var (
		v   any
		err error
	)
	switch e.ResourceType {
	case "User":
		var u scim.User
		if u, err = h.getUser(ctx, e.ID); err == nil {
			p := projection{}
			if hashes {
				// The feed carries hashes whenever the caller may read them
				// (DESIGN.md §3: sent only with sync-password-hashes on).
				p = projection{hashes: true, attrs: []attrRef{{ext: scim.SchemaConnectUser, attr: "passwordHash"}}}
			}
			h.prepareUser(&u, p)
			v = &u
		}
	case "Group":
		var g scim.Group
		if g, err = h.getGroup(ctx, e.ID, false); err == nil {
			h.prepareGroup(&g, projection{excluded: []attrRef{{attr: "members"}}})
			v = &g
		}
	default:
		return nil, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		cache[key] = err
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	cache[key] = v
	return v, nil
}
