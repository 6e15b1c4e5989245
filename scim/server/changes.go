package server

import (
	"context"
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
		case <-h.cfg.Draining:
			t.Stop()
		case <-t.C:
			continue
		}
		break // draining: answer now
	}

	hashes := false
	if len(entries) > 0 {
		if hashes, err = h.mayReadHashes(ctx); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	current, err := h.changeResources(ctx, sc, entries, hashes)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	for _, e := range entries {
		c := scim.Change{Seq: e.Seq, ResourceType: e.ResourceType, ID: e.ID, Op: e.Op, Reason: e.Reason, At: e.At}
		if c.Op == scim.ChangeUpsert && (e.ResourceType == "User" || e.ResourceType == "Group") {
			if res, ok := current[e.ResourceType+"/"+e.ID]; ok {
				c.Resource = res
			} else {
				// Deleted since (or left the scope): report the state the
				// client must reach.
				c.Op, c.Reason = scim.ChangeRemove, scim.ReasonDeleted
			}
		}
		resp.Resources = append(resp.Resources, changeRecord{Schemas: []string{scim.SchemaChange}, Change: c})
	}
	resp.TotalResults = len(resp.Resources)
	resp.ItemsPerPage = len(resp.Resources)
	resp.NextCursor = scopedCursor(sc, next)
	writeJSON(w, http.StatusOK, resp)
}

// changeBatch is how many resources of a Changes page one store query loads.
const changeBatch = 500

// changeResources loads the current state of the resources the upserts of a
// Changes page name, keyed "User/id" and "Group/id": one query per resource
// type (and per changeBatch ids), inside the caller's scope. A resource that
// is missing no longer exists for the caller. Groups come without members: a
// bridge reads members of the groups it syncs separately, so one change to a
// 100,000-member group stays a small record.
func (h *handler) changeResources(ctx context.Context, sc *store.Scope, entries []store.JournalEntry, hashes bool) (map[string]any, error) {
	var users, groups []string
	seen := map[string]bool{}
	for _, e := range entries {
		key := e.ResourceType + "/" + e.ID
		if e.Op != scim.ChangeUpsert || seen[key] {
			continue
		}
		seen[key] = true
		switch e.ResourceType {
		case "User":
			users = append(users, e.ID)
		case "Group":
			groups = append(groups, e.ID)
		}
	}
	out := make(map[string]any, len(seen))
	userProj := projection{}
	if hashes {
		// The feed carries hashes whenever the caller may read them
		// (DESIGN.md §3: sent only with sync-password-hashes on).
		userProj = projection{hashes: true, attrs: []attrRef{{ext: scim.SchemaConnectUser, attr: "passwordHash"}}}
	}
	for lo := 0; lo < len(users); lo += changeBatch {
		ids := users[lo:min(lo+changeBatch, len(users))]
		p, err := h.cfg.Store.ListUsers(ctx, store.Query{IDs: ids, StartIndex: 1, Count: len(ids), Scope: sc})
		if err != nil {
			return nil, err
		}
		for i := range p.Items {
			u := &p.Items[i]
			h.prepareUser(u, userProj)
			out["User/"+u.ID] = u
		}
	}
	groupProj := projection{excluded: []attrRef{{attr: "members"}}}
	for lo := 0; lo < len(groups); lo += changeBatch {
		ids := groups[lo:min(lo+changeBatch, len(groups))]
		p, err := h.cfg.Store.ListGroups(ctx, store.Query{IDs: ids, StartIndex: 1, Count: len(ids), Scope: sc})
		if err != nil {
			return nil, err
		}
		for i := range p.Items {
			g := &p.Items[i]
			h.prepareGroup(g, groupProj)
			out["Group/"+g.ID] = g
		}
	}
	return out, nil
}
