package bridge

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
)

// recordServer is the Records kind of connected servers.
const recordServer = "server"

// Server is a hub (or plain SCIM server) the bridge syncs from.
type Server struct {
	// ID is the bridge's id of the server: the Server of its connect accounts and
	// the hub id of its state keys. Assigned at add time, never changed.
	ID   string `json:"id"`
	Name string `json:"name"`
	// URL is the SCIM base URL (…/scim/v2).
	URL string `json:"url"`
	// Token is the bearer token the bridge reads with. Never printed or logged.
	Token string `json:"token"`
	// Manual: added with `servers add-manual` (no handshake, no SSO trust).
	Manual bool      `json:"manual"`
	Added  time.Time `json:"added"`
	// Hub is set for a server connected with the handshake (SSO trust).
	Hub *HubLink `json:"hub,omitempty"`
}

// String names the server for logs (never with its token).
func (s Server) String() string { return fmt.Sprintf("%s (%s)", s.Name, s.ID) }

// newServerID returns "s" and 12 base32 characters: valid as a state hub id
// (no braces, no spaces) and short enough to read in `users list`.
func newServerID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "s" + strings.ToLower(b32.EncodeToString(b[:])[:12])
}

// NormalizeSCIMURL returns the SCIM base URL of u: a hub's public URL gets
// /scim/v2 appended, a URL already naming a SCIM base is kept.
func NormalizeSCIMURL(u string) (string, error) {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return "", fmt.Errorf("url %q: want http(s)://host[/path]", u)
	}
	if p.User != nil {
		return "", fmt.Errorf("url %q: credentials belong in --token, not the URL", p.Redacted())
	}
	if p.Path == "" {
		u += "/scim/v2"
	}
	return u, nil
}

// AddServer stores a new server and returns it with its id.
func AddServer(ctx context.Context, r Records, name, scimURL, token string, now time.Time) (Server, error) {
	name = strings.TrimSpace(name)
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	u, err := NormalizeSCIMURL(scimURL)
	if err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(token) == "" {
		errs = append(errs, errors.New("token is required"))
	}
	if len(errs) > 0 {
		return Server{}, errors.Join(errs...)
	}
	existing, err := ListServers(ctx, r)
	if err != nil {
		return Server{}, err
	}
	for _, s := range existing {
		if strings.EqualFold(s.Name, name) {
			return Server{}, fmt.Errorf("a server named %q exists already (id %s)", name, s.ID)
		}
		if s.URL == u {
			return Server{}, fmt.Errorf("server %s already syncs from %s", s, u)
		}
	}
	s := Server{ID: newServerID(), Name: name, URL: u, Token: strings.TrimSpace(token), Manual: true, Added: now.UTC()}
	if err := state.CheckHub(s.ID); err != nil {
		return Server{}, err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return Server{}, err
	}
	if err := r.PutRecord(ctx, local.Record{Kind: recordServer, Key: s.ID, Value: b}); err != nil {
		return Server{}, fmt.Errorf("store server: %w", err)
	}
	return s, nil
}

// ListServers returns the connected servers, ordered by id.
func ListServers(ctx context.Context, r Records) ([]Server, error) {
	recs, err := r.ListRecords(ctx, recordServer)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	out := make([]Server, 0, len(recs))
	for _, rec := range recs {
		var s Server
		if err := json.Unmarshal(rec.Value, &s); err != nil {
			return nil, fmt.Errorf("server record %s: %w", rec.Key, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// FindServer returns the server whose id or name (case-insensitive) is ref.
// ErrUnknownServer.
func FindServer(ctx context.Context, r Records, ref string) (Server, error) {
	all, err := ListServers(ctx, r)
	if err != nil {
		return Server{}, err
	}
	for _, s := range all {
		if s.ID == ref || strings.EqualFold(s.Name, ref) {
			return s, nil
		}
	}
	return Server{}, fmt.Errorf("%w: %q", ErrUnknownServer, ref)
}

// RemoveServer forgets a server and its sync state. Its accounts stay (they
// are the site's); a server added again gets a new id and maps them back only
// through account mapping.
func RemoveServer(ctx context.Context, r Records, st State, ref string) (Server, error) {
	s, err := FindServer(ctx, r, ref)
	if err != nil {
		return Server{}, err
	}
	if err := r.DeleteRecord(ctx, recordServer, s.ID); err != nil {
		return Server{}, fmt.Errorf("remove server: %w", err)
	}
	if st != nil {
		if err := st.Wipe(ctx, s.ID); err != nil {
			return s, fmt.Errorf("server removed; wiping its state failed (harmless, it is never read again): %w", err)
		}
	}
	return s, nil
}

// SetServerToken replaces the bearer token of a server (after the hub rotated
// it with `connect hub clients rotate-token`). ErrUnknownServer.
func SetServerToken(ctx context.Context, r Records, ref, token string) (Server, error) {
	token = strings.TrimSpace(token)
	if token == "" || len(token) > 512 {
		return Server{}, errors.New("a token of 1 to 512 characters is required")
	}
	s, err := FindServer(ctx, r, ref)
	if err != nil {
		return Server{}, err
	}
	s.Token = token
	b, err := json.Marshal(s)
	if err != nil {
		return Server{}, err
	}
	if err := r.PutRecord(ctx, local.Record{Kind: recordServer, Key: s.ID, Value: b}); err != nil {
		return Server{}, fmt.Errorf("store server: %w", err)
	}
	return s, nil
}
