package sso

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/saml/sp"
)

// LocalAuth implements sp.LocalAuth with bridge/local.Authenticate. Manual
// accounts log in with their local password. A connect account logs in
// through its hub; only while that hub cannot be reached does its synced
// password hash open the local form (DESIGN.md §6). Without a synced hash
// (the hub setting sync-password-hashes is off) it never can.
type LocalAuth struct {
	// Dir must be the full local directory: Authenticate may rehash a manual
	// account's password.
	Dir      local.Directory
	Accounts *Accounts
	// Reachable reports whether the hub of server id answers; nil: Probe.
	Reachable func(ctx context.Context, server string) bool
}

var _ sp.LocalAuth = (*LocalAuth)(nil)

// Authenticate implements sp.LocalAuth. The username is the local one; a
// connect account's holder knows the generated tc… name less well than their
// email, so an email that names exactly one live connect account is accepted
// for it too.
func (l *LocalAuth) Authenticate(ctx context.Context, username, password string) (sp.LocalUser, error) {
	allowConnect := false
	a, err := l.Dir.AccountByUsername(ctx, username)
	if errors.Is(err, local.ErrNotFound) && strings.Contains(username, "@") {
		if as, eerr := l.Dir.AccountsByEmail(ctx, username); eerr == nil {
			var live []local.Account
			for _, c := range as {
				if c.Auth == local.AuthConnect && !c.IsDeleted() {
					live = append(live, c)
				}
			}
			if len(live) == 1 {
				a, err, username = live[0], nil, live[0].Username
			}
		}
	}
	if err == nil && a.Auth == local.AuthConnect && a.PasswordHash != "" {
		// Only a connect account with a hash pays for the probe; the answer
		// is cached, so a burst of guesses does not become a burst of probes.
		allowConnect = !l.Reachable(ctx, a.Server)
	}
	a, err = local.Authenticate(ctx, l.Dir, username, password, local.AuthOptions{AllowConnect: allowConnect})
	switch {
	case errors.Is(err, local.ErrAuthFailed), errors.Is(err, local.ErrSuspended):
		return sp.LocalUser{}, fmt.Errorf("%w: %w", sp.ErrInvalid, err)
	case err != nil:
		return sp.LocalUser{}, err
	}
	return l.Accounts.user(ctx, a)
}

// Probe decides whether a hub is reachable: GET <hub URL>/readyz answers 200
// within Timeout. Answers are reused for TTL. A server without a HubLink (a
// plain SCIM source, no SSO trust) is never reachable for SSO, so its
// connect accounts may use their synced hashes.
type Probe struct {
	Records    bridge.Records
	HTTPClient *http.Client
	Timeout    time.Duration // default 2 s
	TTL        time.Duration // default 5 s
	Clock      func() time.Time

	mu   sync.Mutex
	seen map[string]probeResult
}

type probeResult struct {
	up bool
	at time.Time
}

// Reachable reports whether server's hub answers now.
func (p *Probe) Reachable(ctx context.Context, server string) bool {
	now := p.Clock()
	ttl := p.TTL
	if ttl == 0 {
		ttl = 5 * time.Second
	}
	p.mu.Lock()
	if r, ok := p.seen[server]; ok && now.Sub(r.at) < ttl {
		p.mu.Unlock()
		return r.up
	}
	p.mu.Unlock()
	up := p.probe(ctx, server)
	p.mu.Lock()
	if p.seen == nil {
		p.seen = map[string]probeResult{}
	}
	p.seen[server] = probeResult{up: up, at: now}
	p.mu.Unlock()
	return up
}

func (p *Probe) probe(ctx context.Context, server string) bool {
	srv, err := bridge.FindServer(ctx, p.Records, server)
	if err != nil || srv.Hub == nil || srv.Hub.HubURL == "" {
		return false
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.Hub.HubURL+"/readyz", nil)
	if err != nil {
		return false
	}
	c := p.HTTPClient
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK
}
