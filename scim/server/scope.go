package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
)

// A bridge token (store.Token.ClientID set) reads only its client's scope
// (DESIGN.md §4): users in the restrict audience, the synced audiences and
// courses, members and "groups" cut to those. Everything outside answers as if
// it did not exist (404, empty lists), never 403, so a token cannot probe ids.

const scopeKey ctxKey = 100

func withScope(ctx context.Context, sc *store.Scope) context.Context {
	return context.WithValue(ctx, scopeKey, sc)
}

// scopeFrom returns the request's client scope, nil for admin tokens.
func scopeFrom(ctx context.Context) *store.Scope {
	sc, _ := ctx.Value(scopeKey).(*store.Scope)
	return sc
}

// errNoClients is why a client token is refused by a store without a client
// registry: failing closed is the only safe answer.
var errNoClients = &scim.Error{Status: http.StatusForbidden, Detail: "client-scoped tokens are not accepted by this hub"}

// scopeOf reads the client of a bridge token. A client deleted since the token
// was read makes the token unusable.
func (h *handler) scopeOf(ctx context.Context, tok store.Token) (*store.Scope, error) {
	cs, ok := h.cfg.Store.(store.Clients)
	if !ok {
		return nil, errNoClients
	}
	c, err := cs.GetClient(ctx, tok.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnauthorized
	}
	if err != nil {
		return nil, err
	}
	return &store.Scope{ClientID: c.ID, RestrictAudience: c.RestrictAudience, Version: c.ScopeVersion}, nil
}

// errScopedAttr refuses filters and sorts on membership attributes for client
// tokens: compiled over every group they would reveal memberships of groups
// outside the scope.
func errScopedAttr(p scim.AttrPath) error {
	return scim.BadRequest(scim.ErrTypeInvalidFilter, "client tokens cannot filter or sort on %s", p.Attr.Name)
}

// membershipAttr says whether p is the "groups" of a user or the "members" of a
// group.
func membershipAttr(p scim.AttrPath) bool {
	if p.Schema == nil || p.Attr == nil { // common attributes (id, meta)
		return false
	}
	return p.Schema.ID == scim.SchemaUser && strings.EqualFold(p.Attr.Name, "groups") ||
		p.Schema.ID == scim.SchemaGroup && strings.EqualFold(p.Attr.Name, "members")
}

func checkScopedFilter(e filter.Expr) error {
	switch x := e.(type) {
	case *filter.And:
		if err := checkScopedFilter(x.L); err != nil {
			return err
		}
		return checkScopedFilter(x.R)
	case *filter.Or:
		if err := checkScopedFilter(x.L); err != nil {
			return err
		}
		return checkScopedFilter(x.R)
	case *filter.Not:
		return checkScopedFilter(x.X)
	case *filter.Compare:
		if membershipAttr(x.Path) {
			return errScopedAttr(x.Path)
		}
	case *filter.ValuePath:
		if membershipAttr(x.Path) {
			return errScopedAttr(x.Path)
		}
	}
	return nil
}

// scopeQuery applies the request's scope to q.
func scopeQuery(ctx context.Context, q *store.Query) error {
	sc := scopeFrom(ctx)
	if sc == nil {
		return nil
	}
	if q.Filter != nil {
		if err := checkScopedFilter(q.Filter); err != nil {
			return err
		}
	}
	if q.SortBy != nil && membershipAttr(*q.SortBy) {
		return errScopedAttr(*q.SortBy)
	}
	q.Scope = sc
	return nil
}

// idQuery selects one resource by id inside sc.
func idQuery(rt *scim.ResourceType, id string, sc *store.Scope, members bool) (store.Query, error) {
	lit, err := json.Marshal(id)
	if err != nil {
		return store.Query{}, err
	}
	e, err := filter.Parse(rt, "id eq "+string(lit), filter.Limits{})
	if err != nil {
		// An id no filter can name names no resource.
		return store.Query{}, fmt.Errorf("id %q: %w", id, store.ErrNotFound)
	}
	return store.Query{Filter: e, StartIndex: 1, Count: 1, Scope: sc, Members: members}, nil
}

// getUser reads a user by id, inside the request's scope.
func (h *handler) getUser(ctx context.Context, id string) (scim.User, error) {
	sc := scopeFrom(ctx)
	if sc == nil {
		return h.cfg.Store.GetUser(ctx, id)
	}
	q, err := idQuery(scim.UserResourceType, id, sc, false)
	if err != nil {
		return scim.User{}, err
	}
	p, err := h.cfg.Store.ListUsers(ctx, q)
	if err != nil {
		return scim.User{}, err
	}
	if len(p.Items) == 0 {
		return scim.User{}, fmt.Errorf("user %s: %w", id, store.ErrNotFound)
	}
	return p.Items[0], nil
}

// getGroup reads a group by id, inside the request's scope.
func (h *handler) getGroup(ctx context.Context, id string, members bool) (scim.Group, error) {
	sc := scopeFrom(ctx)
	if sc == nil {
		return h.cfg.Store.GetGroup(ctx, id, members)
	}
	q, err := idQuery(scim.GroupResourceType, id, sc, members)
	if err != nil {
		return scim.Group{}, err
	}
	p, err := h.cfg.Store.ListGroups(ctx, q)
	if err != nil {
		return scim.Group{}, err
	}
	if len(p.Items) == 0 {
		return scim.Group{}, fmt.Errorf("group %s: %w", id, store.ErrNotFound)
	}
	return p.Items[0], nil
}

// A scoped Changes cursor is "v<scope version>.<seq>": a scope edit on the hub
// makes every cursor of that client expire (410), and the bridge reconciles.
func scopedCursor(sc *store.Scope, seq int64) string {
	if sc == nil {
		return strconv.FormatInt(seq, 10)
	}
	return "v" + strconv.FormatInt(sc.Version, 10) + "." + strconv.FormatInt(seq, 10)
}

// parseCursor reads a Changes cursor; expired reports a cursor of an older
// scope version.
func parseCursor(sc *store.Scope, text string) (seq int64, expired bool, err error) {
	if sc != nil {
		v, rest, ok := strings.Cut(strings.TrimPrefix(text, "v"), ".")
		if !ok || !strings.HasPrefix(text, "v") {
			return 0, false, errBadCursor
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, false, errBadCursor
		}
		if n != sc.Version {
			return 0, true, nil
		}
		text = rest
	}
	seq, err = strconv.ParseInt(text, 10, 64)
	if err != nil || seq < 0 {
		return 0, false, errBadCursor
	}
	return seq, false, nil
}

// scopeEntries turns journal entries into what the scope's client may see:
// entries about resources outside its scope are dropped, and a user who left
// the restrict audience becomes a remove with reason out_of_scope. A deleted
// user's removal is shown only if the user was in the restrict audience, and
// a deleted group's only if the client synced it.
func (h *handler) scopeEntries(ctx context.Context, sc *store.Scope, es []store.JournalEntry) ([]store.JournalEntry, error) {
	cs, ok := h.cfg.Store.(store.Clients)
	if !ok {
		return nil, errNoClients
	}
	var users, groups []string
	for _, e := range es {
		if e.ResourceType == "User" {
			users = append(users, e.ID)
		} else {
			groups = append(groups, e.ID)
		}
	}
	inUsers, err := cs.InScope(ctx, *sc, users)
	if err != nil {
		return nil, err
	}
	inGroups, err := cs.ScopeGroups(ctx, *sc, groups)
	if err != nil {
		return nil, err
	}
	out := es[:0:0]
	for _, e := range es {
		switch e.ResourceType {
		case "User":
			switch {
			case inUsers[e.ID] && e.Op == scim.ChangeUpsert:
				out = append(out, e)
			case e.Op == scim.ChangeRemove:
				if sc.RestrictAudience == "" || strings.Contains(e.Via, " "+sc.RestrictAudience+" ") {
					out = append(out, e)
				}
			case e.Reason == scim.ReasonMembers && e.Via == sc.RestrictAudience && sc.RestrictAudience != "":
				// Left the restrict audience (or was deleted since; the
				// remove row that follows says so).
				e.Op, e.Reason = scim.ChangeRemove, scim.ReasonOutOfScope
				out = append(out, e)
			}
		default:
			if inGroups[e.ID] {
				out = append(out, e)
			}
		}
	}
	return out, nil
}
