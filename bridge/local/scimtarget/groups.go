package scimtarget

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// patchOp is one operation of a SCIM PATCH (RFC 7644 §3.5.2).
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

type patchBody struct {
	Schemas    []string  `json:"schemas"`
	Operations []patchOp `json:"Operations"`
}

func (t *Target) patchGroup(ctx context.Context, id string, ops []patchOp) error {
	q := url.Values{"excludedAttributes": {"members"}}
	resp, err := t.do(ctx, http.MethodPatch, "/Groups/"+url.PathEscape(id), q, patchBody{Schemas: []string{scim.SchemaPatchOp}, Operations: ops}, nil)
	if err != nil {
		return err
	}
	switch resp.status {
	case http.StatusOK, http.StatusNoContent:
		return nil
	}
	return statusErr("patch group "+id, resp)
}

// getGroup reads a group, with its member ids when members is true.
func (t *Target) getGroup(ctx context.Context, id string, members bool) (local.Group, []string, error) {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return local.Group{}, nil, fmt.Errorf("group %q: %w", id, local.ErrNotFound)
	}
	q := url.Values{"excludedAttributes": {"members"}}
	if members {
		q = url.Values{"attributes": {"displayName,externalId,members," + scim.SchemaConnectGroup}}
	}
	resp, err := t.do(ctx, http.MethodGet, "/Groups/"+url.PathEscape(id), q, nil, nil)
	if err != nil {
		return local.Group{}, nil, err
	}
	if resp.status != http.StatusOK {
		return local.Group{}, nil, statusErr("get group "+id, resp)
	}
	var sg scim.Group
	if err := decode("get group", resp, &sg); err != nil {
		return local.Group{}, nil, err
	}
	var ids []string
	for _, m := range sg.Members {
		if m.Type == "" || m.Type == "User" {
			ids = append(ids, m.Value)
		}
	}
	return t.group(sg), ids, nil
}

func (t *Target) findGroups(ctx context.Context, filter string) ([]local.Group, error) {
	var out []local.Group
	after := ""
	for range 1000 {
		gs, next, err := list[scim.Group](ctx, t, "/Groups", filter, after, local.MaxBatch, url.Values{"excludedAttributes": {"members"}})
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			out = append(out, t.group(g))
		}
		if next == "" {
			return out, nil
		}
		after = next
	}
	return nil, fmt.Errorf("scim target: group lookup does not end: %w", local.ErrUnavailable)
}

// Group returns the group with id.
func (t *Target) Group(ctx context.Context, id string) (local.Group, error) {
	g, _, err := t.getGroup(ctx, id, false)
	return g, err
}

// GroupByHubID returns the group made from (server, hubGroupID).
func (t *Target) GroupByHubID(ctx context.Context, server, hubGroupID string) (local.Group, error) {
	if server != "" && hubGroupID != "" {
		gs, err := t.findGroups(ctx, "externalId eq "+quote(groupKey(server, hubGroupID, true))+
			" or externalId eq "+quote(groupKey(server, hubGroupID, false)))
		if err != nil {
			return local.Group{}, err
		}
		for _, g := range gs {
			if g.Server == server && g.HubGroupID == hubGroupID {
				return g, nil
			}
		}
	}
	return local.Group{}, fmt.Errorf("group of (%s, %s): %w", server, hubGroupID, local.ErrNotFound)
}

// PutGroup upserts a group: POST to create, PATCH of its attributes to change
// it (never a PUT, which would rewrite the member list).
func (t *Target) PutGroup(ctx context.Context, actor local.Actor, g local.Group) (local.Group, local.Op, error) {
	if err := local.CheckGroup(g); err != nil {
		return local.Group{}, "", err
	}
	var stored local.Group
	var err error
	switch {
	case g.ID != "":
		stored, err = t.Group(ctx, g.ID)
	case g.HubGroupID != "":
		stored, err = t.GroupByHubID(ctx, g.Server, g.HubGroupID)
		if errors.Is(err, local.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		return local.Group{}, "", err
	}
	if stored.ID == "" {
		if actor != local.ActorConnect && g.Locked {
			return local.Group{}, "", fmt.Errorf("group %q: only Connect makes locked groups: %w", g.Name, local.ErrLocked)
		}
		resp, err := t.do(ctx, http.MethodPost, "/Groups", nil, t.groupResource(g), nil)
		if err != nil {
			return local.Group{}, "", err
		}
		switch resp.status {
		case http.StatusCreated, http.StatusOK:
			var sg scim.Group
			if err := decode("create group", resp, &sg); err != nil {
				return local.Group{}, "", err
			}
			return t.group(sg), local.OpCreated, nil
		case http.StatusConflict:
			if g.HubGroupID != "" { // an earlier try of this put created it
				if got, gerr := t.GroupByHubID(ctx, g.Server, g.HubGroupID); gerr == nil {
					stored = got
					break
				}
			}
			return local.Group{}, "", statusErr(fmt.Sprintf("create group %q", g.Name), resp)
		default:
			return local.Group{}, "", statusErr(fmt.Sprintf("create group %q", g.Name), resp)
		}
	}
	if actor != local.ActorConnect && stored.Locked {
		return local.Group{}, "", fmt.Errorf("group %s (%q): %w", stored.ID, stored.Name, local.ErrLocked)
	}
	if g.HubGroupID != "" && (g.Server != stored.Server || g.HubGroupID != stored.HubGroupID) {
		// The target does not keep externalId unique: check the new key here.
		other, err := t.GroupByHubID(ctx, g.Server, g.HubGroupID)
		if err == nil && other.ID != stored.ID {
			return local.Group{}, "", fmt.Errorf("group (%s, %s) exists: %w", g.Server, g.HubGroupID, local.ErrConflict)
		}
		if err != nil && !errors.Is(err, local.ErrNotFound) {
			return local.Group{}, "", err
		}
	}
	want := t.group(t.groupResource(g))
	if stored.Name == want.Name && stored.Kind == want.Kind && stored.Server == want.Server &&
		stored.HubGroupID == want.HubGroupID && stored.Locked == want.Locked {
		return stored, local.OpUnchanged, nil
	}
	res := t.groupResource(g)
	ops := []patchOp{{Op: "replace", Path: "displayName", Value: res.DisplayName}}
	if res.ExternalID != "" {
		ops = append(ops, patchOp{Op: "replace", Path: "externalId", Value: res.ExternalID})
	} else {
		ops = append(ops, patchOp{Op: "remove", Path: "externalId"})
	}
	if res.Connect != nil {
		ops = append(ops, patchOp{Op: "replace", Path: groupKindAttr, Value: res.Connect.Kind})
	} else {
		ops = append(ops, patchOp{Op: "remove", Path: groupKindAttr})
	}
	if err := t.patchGroup(ctx, stored.ID, ops); err != nil {
		return local.Group{}, "", err
	}
	out, err := t.Group(ctx, stored.ID)
	if err != nil {
		return local.Group{}, "", err
	}
	return out, local.OpUpdated, nil
}

// ListGroups pages through the target's groups.
func (t *Target) ListGroups(ctx context.Context, q local.GroupQuery) ([]local.Group, string, error) {
	var parts []string
	if q.Server != "" {
		parts = append(parts, "externalId sw "+quote(url.QueryEscape(q.Server)+":"))
	}
	if q.Kind == local.KindAudience || q.Kind == local.KindCourse {
		parts = append(parts, groupKindAttr+" eq "+quote(string(q.Kind)))
	}
	gs, next, err := list[scim.Group](ctx, t, "/Groups", strings.Join(parts, " and "), q.After, local.Limit(q.Limit), url.Values{"excludedAttributes": {"members"}})
	if err != nil {
		return nil, "", err
	}
	out := make([]local.Group, 0, len(gs))
	for _, sg := range gs {
		g := t.group(sg)
		if (q.Server == "" || g.Server == q.Server) && (q.Kind == "" || g.Kind == q.Kind) {
			out = append(out, g)
		}
	}
	return out, next, nil
}

// DeleteGroup deletes the group on the target.
func (t *Target) DeleteGroup(ctx context.Context, actor local.Actor, id string) error {
	g, err := t.Group(ctx, id)
	if err != nil {
		return err
	}
	if g.Locked && actor != local.ActorConnect {
		return fmt.Errorf("group %s (%q): %w", g.ID, g.Name, local.ErrLocked)
	}
	resp, err := t.do(ctx, http.MethodDelete, "/Groups/"+url.PathEscape(id), nil, nil, nil)
	if err != nil {
		return err
	}
	if resp.status != http.StatusNoContent && resp.status != http.StatusOK {
		return statusErr("delete group "+id, resp)
	}
	return nil
}

// members reads a group for a member change by actor.
func (t *Target) members(ctx context.Context, actor local.Actor, groupID string) (map[string]bool, error) {
	g, ids, err := t.getGroup(ctx, groupID, true)
	if err != nil {
		return nil, err
	}
	if g.Locked && actor != local.ActorConnect {
		return nil, fmt.Errorf("group %s (%q): %w", g.ID, g.Name, local.ErrLocked)
	}
	have := make(map[string]bool, len(ids))
	for _, id := range ids {
		have[id] = true
	}
	return have, nil
}

// addChunks adds members, MemberChunk per PATCH request.
func (t *Target) addChunks(ctx context.Context, groupID string, ids []string) error {
	for chunk := range slices.Chunk(ids, t.cfg.MemberChunk) {
		vals := make([]scim.Member, len(chunk))
		for i, id := range chunk {
			vals[i] = scim.Member{Value: id}
		}
		if err := t.patchGroup(ctx, groupID, []patchOp{{Op: "add", Path: "members", Value: vals}}); err != nil {
			return err
		}
	}
	return nil
}

// removeChunks removes members with one value-filtered remove operation each,
// MemberChunk operations per PATCH request.
func (t *Target) removeChunks(ctx context.Context, groupID string, ids []string) error {
	for chunk := range slices.Chunk(ids, t.cfg.MemberChunk) {
		ops := make([]patchOp, len(chunk))
		for i, id := range chunk {
			ops[i] = patchOp{Op: "remove", Path: "members[value eq " + quote(id) + "]"}
		}
		if err := t.patchGroup(ctx, groupID, ops); err != nil {
			return err
		}
	}
	return nil
}

func distinct(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// AddMembers adds the accounts that are not members yet.
func (t *Target) AddMembers(ctx context.Context, actor local.Actor, groupID string, accountIDs []string) (int, error) {
	if err := local.CheckIDs("account ids", accountIDs); err != nil {
		return 0, err
	}
	have, err := t.members(ctx, actor, groupID)
	if err != nil {
		return 0, err
	}
	add := slices.DeleteFunc(distinct(accountIDs), func(id string) bool { return have[id] })
	if err := t.addChunks(ctx, groupID, add); err != nil {
		return 0, err
	}
	return len(add), nil
}

// RemoveMembers removes the accounts that are members.
func (t *Target) RemoveMembers(ctx context.Context, actor local.Actor, groupID string, accountIDs []string) (int, error) {
	if err := local.CheckIDs("account ids", accountIDs); err != nil {
		return 0, err
	}
	have, err := t.members(ctx, actor, groupID)
	if err != nil {
		return 0, err
	}
	del := slices.DeleteFunc(distinct(accountIDs), func(id string) bool { return !have[id] })
	if err := t.removeChunks(ctx, groupID, del); err != nil {
		return 0, err
	}
	return len(del), nil
}

// SetMembers applies the difference between the member list and accountIDs:
// chunked adds, then chunked removes.
func (t *Target) SetMembers(ctx context.Context, actor local.Actor, groupID string, accountIDs []string) (int, int, error) {
	for _, id := range accountIDs {
		if id == "" {
			return 0, 0, fmt.Errorf("empty account id: %w", local.ErrInvalid)
		}
	}
	have, err := t.members(ctx, actor, groupID)
	if err != nil {
		return 0, 0, err
	}
	var add []string
	for _, id := range distinct(accountIDs) {
		if have[id] {
			delete(have, id)
		} else {
			add = append(add, id)
		}
	}
	del := make([]string, 0, len(have))
	for id := range have {
		del = append(del, id)
	}
	slices.Sort(del)
	// Adds first: an unknown account id fails before anyone was removed.
	if err := t.addChunks(ctx, groupID, add); err != nil {
		return 0, 0, err
	}
	if err := t.removeChunks(ctx, groupID, del); err != nil {
		return len(add), 0, err
	}
	return len(add), len(del), nil
}

// GroupMembers returns a page of member ids in id order, cut from the whole
// member list (SCIM has no paging of members).
func (t *Target) GroupMembers(ctx context.Context, groupID, after string, limit int) ([]string, string, error) {
	_, ids, err := t.getGroup(ctx, groupID, true)
	if err != nil {
		return nil, "", err
	}
	slices.Sort(ids)
	i, _ := slices.BinarySearch(ids, after)
	if i < len(ids) && ids[i] == after {
		i++
	}
	if after == "" {
		i = 0
	}
	limit = local.Limit(limit)
	end := min(len(ids), i+limit)
	page := ids[i:end]
	next := ""
	if end < len(ids) {
		next = ids[end-1]
	}
	return page, next, nil
}

// AccountGroups returns the ids of the account's groups (the user's "groups").
func (t *Target) AccountGroups(ctx context.Context, accountID string) ([]string, error) {
	if accountID == "" || strings.ContainsAny(accountID, "/?#") {
		return nil, fmt.Errorf("account %q: %w", accountID, local.ErrNotFound)
	}
	resp, err := t.do(ctx, http.MethodGet, "/Users/"+url.PathEscape(accountID), url.Values{"attributes": {"groups"}}, nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusOK {
		return nil, statusErr("get user groups "+accountID, resp)
	}
	var u scim.User
	if err := decode("get user groups", resp, &u); err != nil {
		return nil, err
	}
	var ids []string
	for _, g := range u.Groups {
		ids = append(ids, g.Value)
	}
	slices.Sort(ids)
	return ids, nil
}
