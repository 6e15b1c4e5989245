package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/patch"
	"github.com/connectsso/connect/scim/store"
)

var (
	errNoUserName    = scim.BadRequest(scim.ErrTypeInvalidValue, "userName is required")
	errNoDisplayName = scim.BadRequest(scim.ErrTypeInvalidValue, "displayName is required")
	errNoMatch       = &scim.Error{Status: http.StatusPreconditionFailed, Detail: "If-Match does not match the current version"}
)

// mayReadHashes reports whether the caller may see connect passwordHash: only
// while the hub setting sync-password-hashes is "true" (DESIGN.md §3); then
// bridges receive them to let connect accounts log in while the hub is down.
func (h *handler) mayReadHashes(ctx context.Context) (bool, error) {
	if _, ok := TokenFrom(ctx); !ok {
		return false, nil
	}
	v, err := h.cfg.Store.Setting(ctx, SettingSyncPasswordHashes)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return strings.EqualFold(strings.TrimSpace(v), "true"), nil
}

// projectionFor reads attributes/excludedAttributes from the query string (or
// the lists of a search body).
func (h *handler) projectionFor(r *http.Request, rt *scim.ResourceType, attrs, excluded []string) (projection, error) {
	var p projection
	if attrs == nil {
		if v, ok := r.URL.Query()["attributes"]; ok {
			attrs = v
		}
	}
	if excluded == nil {
		excluded = r.URL.Query()["excludedAttributes"]
	}
	if len(attrs) > 0 {
		p.attrs = parseAttrList(rt, attrs)
		if p.attrs == nil {
			p.attrs = []attrRef{} // only names we do not know: return the always set
		}
	}
	p.excluded = parseAttrList(rt, excluded)
	if rt == scim.UserResourceType && names(p.attrs, scim.SchemaConnectUser, "passwordHash") {
		ok, err := h.mayReadHashes(r.Context())
		if err != nil {
			return p, err
		}
		p.hashes = ok
	}
	return p, nil
}

// prepareUser fills the server-owned parts of a user for output and strips what
// the caller may not see.
func (h *handler) prepareUser(u *scim.User, p projection) {
	u.Password = ""
	if u.Connect != nil && !p.wantsHash() {
		u.Connect.PasswordHash = ""
		c := u.Connect
		if len(c.Interests) == 0 && len(c.CustomFields) == 0 && c.EmailVerified == nil {
			u.Connect = nil
		}
	}
	u.SetSchemas()
	h.prepareMeta(&u.Meta, scim.UserResourceType, u.ID)
}

func (h *handler) prepareGroup(g *scim.Group, p projection) {
	if !p.wantsMembers() {
		g.Members = nil
	}
	for i := range g.Members {
		m := &g.Members[i]
		if m.Ref == "" && m.Value != "" {
			rt := scim.UserResourceType
			if m.Type == "Group" {
				rt = scim.GroupResourceType
			}
			m.Ref = h.location(rt, m.Value)
		}
	}
	g.SetSchemas()
	h.prepareMeta(&g.Meta, scim.GroupResourceType, g.ID)
}

func (h *handler) prepareMeta(m **scim.Meta, rt *scim.ResourceType, id string) {
	if *m == nil {
		*m = &scim.Meta{}
	}
	(*m).ResourceType = rt.Name
	(*m).Location = h.location(rt, id)
}

// respond writes one resource with its ETag (and Location when created).
func (h *handler) respond(w http.ResponseWriter, r *http.Request, rt *resourceType, v any, meta *scim.Meta, status int, p projection) {
	body, err := p.render(v, rt.rt)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if meta != nil && meta.Version != "" {
		w.Header().Set("ETag", meta.Version)
	}
	if status == http.StatusCreated && meta != nil {
		w.Header().Set("Location", meta.Location)
	}
	writeJSON(w, status, body)
}

// ifMatch turns an If-Match header into the version the store must find (0: no
// condition). elimity gap: it has no conditional requests at all (and maps 412
// and 304 to 500 for some methods), so versioning is handled here and the store
// checks the version inside its write transaction. A tag that cannot name a version can never match (412). Several
// tags are checked against the current version, which is then required.
func ifMatch(r *http.Request, current func() (string, error)) (int64, error) {
	hv := strings.TrimSpace(r.Header.Get("If-Match"))
	if hv == "" || hv == "*" {
		return 0, nil
	}
	tags := strings.Split(hv, ",")
	if len(tags) == 1 {
		v, ok := scim.ParseETag(tags[0])
		if !ok {
			return 0, errNoMatch
		}
		return v, nil
	}
	cur, err := current()
	if err != nil {
		return 0, err
	}
	cv, ok := scim.ParseETag(cur)
	if !ok {
		return 0, errNoMatch
	}
	for _, t := range tags {
		if v, ok := scim.ParseETag(t); ok && v == cv {
			return cv, nil
		}
	}
	return 0, errNoMatch
}

// noneMatch reports whether If-None-Match matches the current version (304).
func noneMatch(r *http.Request, version string) bool {
	hv := strings.TrimSpace(r.Header.Get("If-None-Match"))
	if hv == "" {
		return false
	}
	if hv == "*" {
		return true
	}
	cv, ok := scim.ParseETag(version)
	if !ok {
		return false
	}
	for _, t := range strings.Split(hv, ",") {
		if v, ok := scim.ParseETag(t); ok && v == cv {
			return true
		}
	}
	return false
}

func (h *handler) currentVersion(ctx context.Context, rt *resourceType, id string) func() (string, error) {
	return func() (string, error) {
		if rt.rt == scim.UserResourceType {
			u, err := h.cfg.Store.GetUser(ctx, id)
			if err != nil || u.Meta == nil {
				return "", err
			}
			return u.Meta.Version, nil
		}
		g, err := h.cfg.Store.GetGroup(ctx, id, false)
		if err != nil || g.Meta == nil {
			return "", err
		}
		return g.Meta.Version, nil
	}
}

// audited returns the request's context under which the store records the
// write it makes in the audit log, in the write's transaction (DESIGN.md §7):
// actor "token:<name>", action "user.<verb>" or "group.<verb>", target the id.
// A write that changes nothing is not recorded.
func audited(r *http.Request, rt *resourceType, verb string) context.Context {
	actor := "token:?"
	if t, ok := TokenFrom(r.Context()); ok {
		actor = "token:" + t.Name
	}
	return store.WithAudit(r.Context(), store.AuditEntry{Actor: actor, Action: strings.ToLower(rt.rt.Name) + "." + verb})
}

// create serves POST /Users and POST /Groups (RFC 7644 §3.3).
func (h *handler) create(w http.ResponseWriter, r *http.Request, rt *resourceType) {
	raw, err := readBody(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ctx := audited(r, rt, "create")
	if rt.rt == scim.UserResourceType {
		var u scim.User
		if err := decodeResource(rt, raw, &u); err != nil {
			h.writeError(w, r, err)
			return
		}
		if err := h.checkUser(&u); err != nil {
			h.writeError(w, r, err)
			return
		}
		if err := checkNewHash(&u, ""); err != nil {
			h.writeError(w, r, err)
			return
		}
		u.ID, u.Meta, u.Groups = "", nil, nil
		out, err := h.cfg.Store.CreateUser(ctx, u)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.writeUser(w, r, rt, out, http.StatusCreated)
		return
	}
	var g scim.Group
	if err := decodeResource(rt, raw, &g); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := checkGroup(&g); err != nil {
		h.writeError(w, r, err)
		return
	}
	g.ID, g.Meta = "", nil
	out, err := h.cfg.Store.CreateGroup(ctx, g)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeGroup(w, r, rt, out, http.StatusCreated, false)
}

// checkGroup enforces, for POST and PUT, what PATCH checks through
// patch.ApplyGroup: a non-blank displayName and a known kind, lower-cased.
func checkGroup(g *scim.Group) error {
	if strings.TrimSpace(g.DisplayName) == "" {
		return errNoDisplayName
	}
	return g.NormalizeKind()
}

// checkUser enforces what elimity's validation cannot: a non-blank userName and
// the password-to-hash rule. The passwordHash is checked by checkNewHash.
func (h *handler) checkUser(u *scim.User) error {
	if strings.TrimSpace(u.UserName) == "" {
		return errNoUserName
	}
	return h.hashPassword(u)
}

// checkNewHash refuses a passwordHash the hub cannot verify (checkHash) unless
// it is kept, the hash the user already has: one stored before this check
// existed is left alone until the client sends another.
func checkNewHash(u *scim.User, kept string) error {
	if u.Connect == nil || u.Connect.PasswordHash == "" || u.Connect.PasswordHash == kept {
		return nil
	}
	return checkHash(u.Connect.PasswordHash)
}

func (h *handler) writeUser(w http.ResponseWriter, r *http.Request, rt *resourceType, u scim.User, status int) {
	p, err := h.projectionFor(r, rt.rt, nil, nil)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.prepareUser(&u, p)
	h.respond(w, r, rt, &u, u.Meta, status, p)
}

// writeGroup writes a group; members are loaded when the projection wants them
// and g came back without them (PATCH returns none unless asked explicitly).
func (h *handler) writeGroup(w http.ResponseWriter, r *http.Request, rt *resourceType, g scim.Group, status int, explicitMembers bool) {
	p, err := h.projectionFor(r, rt.rt, nil, nil)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	want := p.wantsMembers()
	if explicitMembers {
		want = p.attrs != nil && want
	}
	if want && g.Members == nil {
		full, err := h.cfg.Store.GetGroup(r.Context(), g.ID, true)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		g = full
	}
	if !want {
		g.Members = nil
	}
	h.prepareGroup(&g, p)
	h.respond(w, r, rt, &g, g.Meta, status, p)
}

// get serves GET /Users/{id} and /Groups/{id} with If-None-Match (RFC 7644
// §3.4.1, §3.14).
func (h *handler) get(w http.ResponseWriter, r *http.Request, rt *resourceType, id string) {
	ctx := r.Context()
	p, err := h.projectionFor(r, rt.rt, nil, nil)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if rt.rt == scim.UserResourceType {
		u, err := h.getUser(ctx, id)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if u.Meta != nil && noneMatch(r, u.Meta.Version) {
			h.notModified(w, u.Meta.Version)
			return
		}
		h.prepareUser(&u, p)
		h.respond(w, r, rt, &u, u.Meta, http.StatusOK, p)
		return
	}
	g, err := h.getGroup(ctx, id, p.wantsMembers())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if g.Meta != nil && noneMatch(r, g.Meta.Version) {
		h.notModified(w, g.Meta.Version)
		return
	}
	h.prepareGroup(&g, p)
	h.respond(w, r, rt, &g, g.Meta, http.StatusOK, p)
}

func (h *handler) notModified(w http.ResponseWriter, version string) {
	w.Header().Set("ETag", version)
	w.WriteHeader(http.StatusNotModified)
}

// replace serves PUT (RFC 7644 §3.5.1). A user's password hash survives a PUT
// that carries neither password nor passwordHash: it is a credential the client
// cannot read back, so omitting it cannot mean "clear it". A PUT of what is
// stored changes nothing: the store keeps version and journal as they are.
func (h *handler) replace(w http.ResponseWriter, r *http.Request, rt *resourceType, id string) {
	raw, err := readBody(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ctx := audited(r, rt, "replace")
	if rt.rt == scim.UserResourceType {
		var u scim.User
		if err := decodeResource(rt, raw, &u); err != nil {
			h.writeError(w, r, err)
			return
		}
		if err := h.checkUser(&u); err != nil {
			h.writeError(w, r, err)
			return
		}
		version, err := ifMatch(r, h.currentVersion(ctx, rt, id))
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		out, err := h.cfg.Store.UpdateUser(ctx, id, version, func(cur *scim.User) error {
			next := u
			next.ID, next.Meta, next.Groups = cur.ID, cur.Meta, cur.Groups
			if (next.Connect == nil || next.Connect.PasswordHash == "") && cur.Connect != nil && cur.Connect.PasswordHash != "" {
				if next.Connect == nil {
					next.Connect = &scim.ConnectUser{}
				}
				next.Connect.PasswordHash = cur.Connect.PasswordHash
			}
			kept := ""
			if cur.Connect != nil {
				kept = cur.Connect.PasswordHash
			}
			if err := checkNewHash(&next, kept); err != nil {
				return err
			}
			*cur = next
			return nil
		})
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.writeUser(w, r, rt, out, http.StatusOK)
		return
	}
	var g scim.Group
	if err := decodeResource(rt, raw, &g); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := checkGroup(&g); err != nil {
		h.writeError(w, r, err)
		return
	}
	version, err := ifMatch(r, h.currentVersion(ctx, rt, id))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	g.ID, g.Meta = id, nil
	out, err := h.cfg.Store.ReplaceGroup(ctx, g, version)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeGroup(w, r, rt, out, http.StatusOK, false)
}

// patch serves PATCH (RFC 7644 §3.5.2) through the store's read-modify-write
// transaction; group members change row by row, never as a whole list. A PATCH
// that changes nothing (Entra repeats idempotent ones: removing a member who
// is not there, replacing a value by itself) answers 200 with the stored
// resource and ETag and writes nothing, so it reaches no bridge.
func (h *handler) patch(w http.ResponseWriter, r *http.Request, rt *resourceType, id string) {
	raw, err := readBody(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req, err := patch.Decode(raw)
	if err != nil {
		h.writeError(w, r, badPatch(err))
		return
	}
	ctx := audited(r, rt, "patch")
	version, err := ifMatch(r, h.currentVersion(ctx, rt, id))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if rt.rt == scim.UserResourceType {
		out, err := h.cfg.Store.UpdateUser(ctx, id, version, func(u *scim.User) error {
			kept := ""
			if u.Connect != nil {
				kept = u.Connect.PasswordHash
			}
			if err := patch.ApplyUser(u, req.Operations); err != nil {
				return badPatch(err)
			}
			if err := h.checkUser(u); err != nil {
				return err
			}
			return checkNewHash(u, kept)
		})
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.writeUser(w, r, rt, out, http.StatusOK)
		return
	}
	out, err := h.cfg.Store.UpdateGroup(ctx, id, version, func(g *scim.Group, m *store.MemberOps) error {
		if err := patch.ApplyGroup(g, m, req.Operations); err != nil {
			return badPatch(err)
		}
		if strings.TrimSpace(g.DisplayName) == "" {
			return errNoDisplayName
		}
		return nil
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out.Members = nil
	h.writeGroup(w, r, rt, out, http.StatusOK, true)
}

// badPatch keeps SCIM errors from the patch package and turns anything else
// into invalidValue (patch errors describe the request, not the server).
func badPatch(err error) error {
	var se *scim.Error
	if errors.As(err, &se) {
		return se
	}
	if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrNotFound) {
		return err
	}
	return scim.BadRequest(scim.ErrTypeInvalidValue, "the PATCH request is invalid")
}

// delete serves DELETE (RFC 7644 §3.6) with If-Match.
func (h *handler) delete(w http.ResponseWriter, r *http.Request, rt *resourceType, id string) {
	ctx := audited(r, rt, "delete")
	version, err := ifMatch(r, h.currentVersion(ctx, rt, id))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if rt.rt == scim.UserResourceType {
		err = h.cfg.Store.DeleteUser(ctx, id, version)
	} else {
		err = h.cfg.Store.DeleteGroup(ctx, id, version)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
