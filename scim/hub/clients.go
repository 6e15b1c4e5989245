package hub

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/server"
	"github.com/connectsso/connect/scim/store"
)

// Client systems (DESIGN.md §4, §5): the hub side of the setup-secret
// handshake and the registry commands. A connection is made in one step: the
// hub stores the client with a fresh bridge token, calls the bridge's
// register endpoint with the setup secret, and registers the SP metadata the
// bridge answers with. Any failure undoes what was done on both sides.

// ErrNoClientStore is returned when the store has no client registry.
var ErrNoClientStore = errors.New("store has no client registry")

// SettingHubID is the hub setting holding the hub's stable identity, sent to
// bridges (their Redis keys carry it as a hash tag).
const SettingHubID = "hub-id"

// HubID returns the hub's stable id, creating it on first use.
func HubID(ctx context.Context, st store.Store) (string, error) {
	id, err := st.Setting(ctx, SettingHubID)
	if err == nil && id != "" {
		return id, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	id = uuid.NewString()
	if err := st.SetSetting(ctx, SettingHubID, id); err != nil {
		return "", err
	}
	return id, nil
}

func clientStore(st store.Store) (store.Clients, error) {
	cs, ok := st.(store.Clients)
	if !ok {
		return nil, ErrNoClientStore
	}
	return cs, nil
}

// ClientOptions are the options of a client system (Totara Connect's, one for
// one). Groups are named by id or by display name.
type ClientOptions struct {
	Name             string
	RestrictAudience string
	AddNewAudiences  bool
	AddNewCourses    bool
	Audiences        []string
	Courses          []string
	Comment          string
}

// Connect is what AddClient needs to reach a bridge.
type Connect struct {
	// HubURL is the hub's public base URL, HubName its display name.
	HubURL, HubName string
	// Actor is recorded in the audit log.
	Actor string
	// HTTPClient calls the bridge; nil means a client with a 15 s timeout.
	HTTPClient *http.Client
	// InsecureHTTP allows a plain http:// Client URL on a non-loopback host.
	InsecureHTTP bool
}

// ClientURL checks and normalises a bridge's Client URL: http(s), a host, no
// query, fragment or user info; plain http only on loopback unless insecure.
func ClientURL(raw string, insecure bool) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("client URL %q: want an absolute http(s) URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("client URL %q: no user info, query or fragment allowed", raw)
	}
	if u.Scheme == "http" && !insecure && !isLoopback(u.Hostname()) {
		return "", fmt.Errorf("client URL %q: plain http is accepted only on loopback addresses (use https, or --insecure-http)", raw)
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	return u.String(), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin reports whether two URLs name the same scheme, host and port.
func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return false
	}
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if u.Scheme == "https" {
			return "443"
		}
		return "80"
	}
	ha, hb := strings.ToLower(ua.Hostname()), strings.ToLower(ub.Hostname())
	if isLoopback(ha) && isLoopback(hb) {
		ha, hb = "loopback", "loopback"
	}
	return ua.Scheme == ub.Scheme && ha == hb && port(ua) == port(ub)
}

// resolveGroups turns group ids or names of one kind into ids.
func resolveGroups(ctx context.Context, st store.Store, kind string, refs []string) ([]string, error) {
	var out []string
	for _, ref := range refs {
		ref = strings.TrimSpace(ref)
		if ref == "" {
			continue
		}
		if g, err := st.GetGroup(ctx, ref, false); err == nil {
			if g.Kind() != kind {
				return nil, fmt.Errorf("group %q is not a %s", ref, kind)
			}
			out = append(out, g.ID)
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		lit, _ := json.Marshal(ref)
		kindLit, _ := json.Marshal(kind)
		e, err := filter.Parse(scim.GroupResourceType, "displayName eq "+string(lit)+" and "+scim.SchemaConnectGroup+":kind eq "+string(kindLit), filter.Limits{})
		if err != nil {
			return nil, fmt.Errorf("group %q: %w", ref, err)
		}
		p, err := st.ListGroups(ctx, store.Query{Filter: e, StartIndex: 1, Count: 2})
		if err != nil {
			return nil, err
		}
		if p.Total != 1 {
			return nil, fmt.Errorf("no %s named or with id %q", kind, ref)
		}
		out = append(out, p.Items[0].ID)
	}
	return out, nil
}

// applyOptions resolves opts into c.
func applyOptions(ctx context.Context, st store.Store, c *store.Client, o ClientOptions) error {
	c.Name, c.Comment = strings.TrimSpace(o.Name), o.Comment
	c.AddNewAudiences, c.AddNewCourses = o.AddNewAudiences, o.AddNewCourses
	c.RestrictAudience = ""
	if o.RestrictAudience != "" {
		ids, err := resolveGroups(ctx, st, scim.KindAudience, []string{o.RestrictAudience})
		if err != nil {
			return fmt.Errorf("restrict audience: %w", err)
		}
		c.RestrictAudience = ids[0]
	}
	auds, err := resolveGroups(ctx, st, scim.KindAudience, o.Audiences)
	if err != nil {
		return err
	}
	courses, err := resolveGroups(ctx, st, scim.KindCourse, o.Courses)
	if err != nil {
		return err
	}
	c.Groups = append(auds, courses...)
	return nil
}

// newSecretToken returns a bridge token secret and its stored form.
func newSecretToken(name string) (string, store.Token, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", store.Token{}, err
	}
	secret := "cbr_" + hex.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	return secret, store.Token{Name: name, Hash: sum[:]}, nil
}

// AddClient connects a bridge: it checks the options, stores the client and
// its token, calls the bridge's register endpoint with the setup secret and
// registers the SP metadata it returns. On any failure nothing stays behind on
// the hub, and the bridge is told to forget the registration when it had
// accepted it.
func AddClient(ctx context.Context, st store.Store, cn Connect, clientURL, secret string, o ClientOptions) (store.Client, error) {
	cs, err := clientStore(st)
	if err != nil {
		return store.Client{}, err
	}
	ist, err := idpStore(st)
	if err != nil {
		return store.Client{}, err
	}
	u, err := ClientURL(clientURL, cn.InsecureHTTP)
	if err != nil {
		return store.Client{}, err
	}
	if sameOrigin(u, cn.HubURL) {
		return store.Client{}, fmt.Errorf("client URL %s is this hub's own address: a hub cannot connect to itself", u)
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return store.Client{}, errors.New("the setup secret is required (from `connect bridge servers connect`)")
	}
	if strings.TrimSpace(o.Name) == "" {
		return store.Client{}, errors.New("the client name is required")
	}
	if _, err := cs.ClientByURL(ctx, u); err == nil {
		return store.Client{}, fmt.Errorf("client URL %s is already registered", u)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Client{}, err
	}
	c := store.Client{URL: u}
	if err := applyOptions(ctx, st, &c, o); err != nil {
		return store.Client{}, err
	}
	hubID, err := HubID(ctx, st)
	if err != nil {
		return store.Client{}, err
	}
	tokSecret, tok, err := newSecretToken("client:" + c.Name)
	if err != nil {
		return store.Client{}, err
	}
	c, err = cs.CreateClient(ctx, c, tok)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Client{}, fmt.Errorf("a client with that name or URL already exists: %w", err)
		}
		return store.Client{}, fmt.Errorf("store client: %w", err)
	}
	undo := func(bridgeToo bool) {
		// Best effort, on a context of its own: the caller's may be done.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		if bridgeToo {
			_ = postJSON(uctx, cn.client(), u+scim.UnregisterPath, scim.UnregisterRequest{HubID: hubID, ClientID: c.ID, Token: tokSecret}, nil)
		}
		_ = cs.DeleteClient(uctx, c.ID)
	}
	base := strings.TrimRight(cn.HubURL, "/")
	req := scim.RegisterRequest{
		Secret: secret, HubID: hubID, HubName: cn.HubName, HubURL: base,
		EntityID: base + idp.PathMetadata, MetadataURL: base + idp.PathMetadata,
		SCIMURL: base + server.DefaultPrefix, ClientID: c.ID, Token: tokSecret,
	}
	var resp scim.RegisterResponse
	if err := postJSON(ctx, cn.client(), u+scim.RegisterPath, req, &resp); err != nil {
		// The bridge may have stored the registration and lost its answer (a
		// timeout, a dropped connection): undo it there too. The unregister
		// call names the token just made, so it cannot touch anything else,
		// and a bridge that stored nothing answers 404.
		undo(true)
		return store.Client{}, err
	}
	ed, err := idp.ParseSPMetadata([]byte(resp.SPMetadata))
	if err != nil {
		undo(true)
		return store.Client{}, fmt.Errorf("the bridge's SAML metadata is not usable: %w", err)
	}
	if _, err := ist.CreateServiceProvider(ctx, store.ServiceProvider{EntityID: ed.EntityID, Metadata: []byte(resp.SPMetadata), Source: "client " + c.ID, ClientID: c.ID}); err != nil {
		undo(true)
		if errors.Is(err, store.ErrConflict) {
			return store.Client{}, fmt.Errorf("the bridge's SAML entity %s is already registered on this hub", ed.EntityID)
		}
		return store.Client{}, fmt.Errorf("register the bridge's SAML metadata: %w", err)
	}
	c, err = cs.UpdateClient(ctx, c.ID, func(cl *store.Client) error { cl.EntityID = ed.EntityID; return nil })
	if err != nil {
		_ = ist.DeleteServiceProvider(context.WithoutCancel(ctx), ed.EntityID)
		undo(true)
		return store.Client{}, err
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: cn.Actor, Action: "client.add", Target: c.ID, Detail: c.Name + " " + c.URL}); err != nil {
		return c, fmt.Errorf("audit: %w", err)
	}
	return c, nil
}

func (cn Connect) client() *http.Client {
	if cn.HTTPClient != nil {
		return cn.HTTPClient
	}
	return &http.Client{
		Timeout: 15 * time.Second,
		// A bridge answers itself; following a redirect could send the
		// secret and token somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// HandshakeError is a refusal from the bridge.
type HandshakeError struct {
	Status int
	Code   string
	Msg    string
}

func (e *HandshakeError) Error() string {
	switch e.Code {
	case scim.HandshakeBadSecret:
		return "the bridge refused the setup secret: it is wrong, expired or already used (run `connect bridge servers connect` again)"
	case scim.HandshakeIsHub:
		return "the client URL is a Connect hub, not a bridge: a hub cannot connect to a hub"
	case scim.HandshakeAlreadyConnected:
		return "the bridge is already connected to this hub"
	case scim.HandshakeHubUnreachable:
		return "the bridge could not fetch this hub's SAML metadata: check that the bridge can reach the hub's public URL (" + e.Msg + ")"
	}
	if e.Msg != "" {
		return fmt.Sprintf("the bridge refused the connection (%d %s): %s", e.Status, e.Code, e.Msg)
	}
	return fmt.Sprintf("the bridge refused the connection (HTTP %d)", e.Status)
}

// postJSON posts v and decodes a 2xx answer into out (when not nil).
func postJSON(ctx context.Context, c *http.Client, u string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("the client URL does not answer (%s): %w", u, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the bridge's answer: %w", err)
	}
	if res.StatusCode/100 != 2 {
		var he scim.HandshakeError
		if json.Unmarshal(raw, &he) == nil && he.Code != "" {
			return &HandshakeError{Status: res.StatusCode, Code: he.Code, Msg: he.Message}
		}
		return fmt.Errorf("the client URL is not a Connect bridge (%s answered HTTP %d)", u, res.StatusCode)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("the client URL is not a Connect bridge (its answer is not a registration): %w", err)
	}
	return nil
}

// ClientUpdate changes some options of a client; nil fields stay.
type ClientUpdate struct {
	Name             *string
	RestrictAudience *string
	AddNewAudiences  *bool
	AddNewCourses    *bool
	Audiences        *[]string
	Courses          *[]string
	Comment          *string
}

// UpdateClient applies u to the client with that id (or name).
func UpdateClient(ctx context.Context, st store.Store, actor, idOrName string, u ClientUpdate) (store.Client, error) {
	cs, err := clientStore(st)
	if err != nil {
		return store.Client{}, err
	}
	c, err := FindClient(ctx, st, idOrName)
	if err != nil {
		return store.Client{}, err
	}
	// Resolve names before the transaction; group kinds are checked again in it.
	var restrict string
	var auds, courses []string
	if u.RestrictAudience != nil && *u.RestrictAudience != "" {
		ids, err := resolveGroups(ctx, st, scim.KindAudience, []string{*u.RestrictAudience})
		if err != nil {
			return store.Client{}, fmt.Errorf("restrict audience: %w", err)
		}
		restrict = ids[0]
	}
	if u.Audiences != nil {
		if auds, err = resolveGroups(ctx, st, scim.KindAudience, *u.Audiences); err != nil {
			return store.Client{}, err
		}
	}
	if u.Courses != nil {
		if courses, err = resolveGroups(ctx, st, scim.KindCourse, *u.Courses); err != nil {
			return store.Client{}, err
		}
	}
	out, err := cs.UpdateClient(ctx, c.ID, func(cl *store.Client) error {
		if u.Name != nil {
			cl.Name = *u.Name
		}
		if u.Comment != nil {
			cl.Comment = *u.Comment
		}
		if u.AddNewAudiences != nil {
			cl.AddNewAudiences = *u.AddNewAudiences
		}
		if u.AddNewCourses != nil {
			cl.AddNewCourses = *u.AddNewCourses
		}
		if u.RestrictAudience != nil {
			cl.RestrictAudience = restrict
		}
		if u.Audiences != nil || u.Courses != nil {
			kinds, err := groupKinds(ctx, st, cl.Groups)
			if err != nil {
				return err
			}
			var keep []string
			if u.Audiences == nil {
				keep = append(keep, ofKind(cl.Groups, kinds, scim.KindAudience)...)
			} else {
				keep = append(keep, auds...)
			}
			if u.Courses == nil {
				keep = append(keep, ofKind(cl.Groups, kinds, scim.KindCourse)...)
			} else {
				keep = append(keep, courses...)
			}
			cl.Groups = keep
		}
		return nil
	})
	if err != nil {
		return store.Client{}, err
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: actor, Action: "client.update", Target: out.ID, Detail: out.Name}); err != nil {
		return out, fmt.Errorf("audit: %w", err)
	}
	return out, nil
}

func groupKinds(ctx context.Context, st store.Store, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		g, err := st.GetGroup(ctx, id, false)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[id] = g.Kind()
	}
	return out, nil
}

func ofKind(ids []string, kinds map[string]string, kind string) []string {
	var out []string
	for _, id := range ids {
		if kinds[id] == kind {
			out = append(out, id)
		}
	}
	return out
}

// FindClient returns the client with that id, else the one with that name
// (case-insensitive), else the one with that URL.
func FindClient(ctx context.Context, st store.Store, ref string) (store.Client, error) {
	cs, err := clientStore(st)
	if err != nil {
		return store.Client{}, err
	}
	if c, err := cs.GetClient(ctx, ref); err == nil {
		return c, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Client{}, err
	}
	all, err := cs.ListClients(ctx)
	if err != nil {
		return store.Client{}, err
	}
	for _, c := range all {
		if strings.EqualFold(c.Name, ref) || c.URL == ref {
			return c, nil
		}
	}
	return store.Client{}, fmt.Errorf("no client %q: %w", ref, store.ErrNotFound)
}

// RemoveClient deletes a client, revokes its token and unregisters its SP.
// The bridge is not called (the hub keeps only its token's hash, so it cannot
// authenticate to the bridge): its next sync gets 401 and reports it, and its
// operator removes the server there with `connect bridge servers remove`.
func RemoveClient(ctx context.Context, st store.Store, cn Connect, ref string) (store.Client, error) {
	cs, err := clientStore(st)
	if err != nil {
		return store.Client{}, err
	}
	c, err := FindClient(ctx, st, ref)
	if err != nil {
		return store.Client{}, err
	}
	if err := cs.DeleteClient(ctx, c.ID); err != nil {
		return store.Client{}, err
	}
	if ist, err := idpStore(st); err == nil && c.EntityID != "" {
		if err := ist.DeleteServiceProvider(ctx, c.EntityID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return c, fmt.Errorf("unregister the client's SAML SP: %w", err)
		}
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: cn.Actor, Action: "client.remove", Target: c.ID, Detail: c.Name + " " + c.URL}); err != nil {
		return c, fmt.Errorf("audit: %w", err)
	}
	return c, nil
}

// RotateClientToken replaces the client's bridge token and returns the new
// secret. The old token stops working at once; give the new one to the bridge
// with `connect bridge servers set-token SERVER` (it reads it from stdin).
func RotateClientToken(ctx context.Context, st store.Store, actor, ref string) (string, error) {
	cs, err := clientStore(st)
	if err != nil {
		return "", err
	}
	c, err := FindClient(ctx, st, ref)
	if err != nil {
		return "", err
	}
	secret, tok, err := newSecretToken("client:" + c.Name)
	if err != nil {
		return "", err
	}
	if _, err := cs.ReplaceClientToken(ctx, c.ID, tok); err != nil {
		return "", err
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: actor, Action: "client.rotate-token", Target: c.ID, Detail: c.Name}); err != nil {
		return secret, fmt.Errorf("audit: %w", err)
	}
	return secret, nil
}

// refuseHubRegistration answers a handshake aimed at a hub: a Client URL that
// reaches a hub (under whatever name) is refused with is_hub, so a hub never
// connects to itself or to another hub.
func refuseHubRegistration(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusConflict)
	_ = json.NewEncoder(w).Encode(scim.HandshakeError{Code: scim.HandshakeIsHub, Message: "this is a Connect hub, not a bridge"})
}

// Hub settings written by a serving hub so that admin commands (clients add)
// know the public URL and name bridges must be given.
const (
	SettingPublicURL  = "public-url"
	SettingPublicName = "public-name"
)

// recordIdentity stores the hub's public URL, name and id (best effort: a
// failure only means `clients add` needs --hub-url).
func (s *Server) recordIdentity(ctx context.Context) {
	for k, v := range map[string]string{SettingPublicURL: s.cfg.URL, SettingPublicName: s.cfg.Name} {
		if err := s.cfg.Store.SetSetting(ctx, k, v); err != nil {
			s.log.Warn("record hub identity", "setting", k, "err", err)
		}
	}
	if _, err := HubID(ctx, s.cfg.Store); err != nil {
		s.log.Warn("record hub id", "err", err)
	}
}

// PublicIdentity returns the URL and name the serving hub recorded ("" when
// it never ran on this store).
func PublicIdentity(ctx context.Context, st store.Store) (url, name string, err error) {
	for _, kv := range []struct {
		key string
		v   *string
	}{{SettingPublicURL, &url}, {SettingPublicName, &name}} {
		v, err := st.Setting(ctx, kv.key)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", "", err
		}
		*kv.v = v
	}
	return url, name, nil
}

// serveDisconnect handles POST DisconnectPath: a bridge leaving. The bearer
// must be a live bridge token; its client is removed (token revoked, SP
// unregistered). Any other caller gets 401 and nothing changes.
func (s *Server) serveDisconnect(w http.ResponseWriter, r *http.Request) {
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" || len(secret) > 512 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="connect"`)
		http.Error(w, "a bridge token is required", http.StatusUnauthorized)
		return
	}
	tok, err := s.cfg.Store.TokenByHash(r.Context(), HashToken(secret))
	if err != nil || tok.Revoked || tok.ClientID == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="connect"`)
		http.Error(w, "a bridge token is required", http.StatusUnauthorized)
		return
	}
	c, err := RemoveClient(r.Context(), s.cfg.Store, Connect{Actor: "bridge:" + tok.ClientID}, tok.ClientID)
	if err != nil {
		s.log.Error("bridge disconnect", "client", tok.ClientID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.log.Info("bridge disconnected; client removed", "client", c.ID, "name", c.Name)
	w.WriteHeader(http.StatusNoContent)
}
