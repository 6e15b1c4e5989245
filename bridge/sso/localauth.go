package sso

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
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

	// Attempts, when set, counts local login attempts per account and per
	// client address (withClientAddress) in the bridge state, which every
	// replica shares when it is Redis. An attempt is counted before the
	// password is checked, so the replicas together let at most
	// AccountLimit failed logins of one account (AddressLimit from one
	// address) through within Window; a refused attempt counts nowhere, a
	// success clears the account's count, and an attempt that could not be
	// checked (directory down) is forgotten. 0 takes the saml/sp default;
	// negative: no limit. nil leaves only the SP's per-replica throttle.
	Attempts                   Attempts
	AccountLimit, AddressLimit int
	Window                     time.Duration
}

// Attempts is the part of the bridge state that counts login attempts
// (state.State implements it).
type Attempts interface {
	Attempt(ctx context.Context, name, id string, limit int, window time.Duration) (n int, admitted bool, err error)
	ForgetAttempts(ctx context.Context, name string, ids ...string) error
}

var _ Attempts = state.State(nil)

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
	r, err := l.reserve(ctx, username)
	if err != nil {
		return sp.LocalUser{}, err
	}
	a, err = local.Authenticate(ctx, l.Dir, username, password, local.AuthOptions{AllowConnect: allowConnect})
	switch {
	case errors.Is(err, local.ErrAuthFailed), errors.Is(err, local.ErrSuspended):
		return sp.LocalUser{}, fmt.Errorf("%w: %w", sp.ErrInvalid, err)
	case err != nil:
		r.forget(ctx, false)
		return sp.LocalUser{}, err
	}
	r.forget(ctx, true)
	return l.Accounts.user(ctx, a)
}

// reservation is one login attempt counted by LocalAuth.reserve.
type reservation struct {
	at      Attempts
	id      string
	account string   // the account's counter, when counted
	names   []string // the counters that hold id
}

// errThrottled is the cause of a refusal by the shared counters; the user
// sees the same page as for a wrong password, the log sees this.
var errThrottled = errors.New("too many failed local logins (shared by the replicas)")

// reserve counts an attempt to log in as username (already resolved from
// an email) in the shared counters of the account and of the client's
// address. When either is full the attempt is refused (sp.ErrInvalid) and
// counted nowhere.
func (l *LocalAuth) reserve(ctx context.Context, username string) (*reservation, error) {
	if l.Attempts == nil {
		return nil, nil
	}
	window := l.Window
	if window <= 0 {
		window = sp.DefaultLocalWindow
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("login throttle: %w", err)
	}
	r := &reservation{at: l.Attempts, id: hex.EncodeToString(b[:])}
	counters := []struct {
		name         string
		limit, deflt int
	}{
		{counterName("login-account", strings.ToLower(username)), l.AccountLimit, sp.DefaultLocalAccountLimit},
	}
	if addr := clientAddress(ctx); addr != "" {
		counters = append(counters, struct {
			name         string
			limit, deflt int
		}{counterName("login-address", addr), l.AddressLimit, sp.DefaultLocalAddressLimit})
	}
	for i, c := range counters {
		limit := c.limit
		if limit == 0 {
			limit = c.deflt
		}
		if limit < 0 {
			continue
		}
		_, ok, err := l.Attempts.Attempt(ctx, c.name, r.id, min(limit, state.MaxAttemptLimit), window)
		if err != nil {
			r.forget(ctx, false)
			return nil, fmt.Errorf("login throttle: %w", err)
		}
		if !ok {
			r.forget(ctx, false)
			return nil, fmt.Errorf("%w: %w", sp.ErrInvalid, errThrottled)
		}
		if i == 0 {
			r.account = c.name
		}
		r.names = append(r.names, c.name)
	}
	return r, nil
}

// forget takes the attempt back from its counters (it could not be checked,
// or was refused before); after a success it clears the account's count.
// Best effort: a failure leaves an attempt counted until its window ends.
func (r *reservation) forget(ctx context.Context, success bool) {
	if r == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, name := range r.names {
		if success && name == r.account {
			_ = r.at.ForgetAttempts(ctx, name)
			continue
		}
		_ = r.at.ForgetAttempts(ctx, name, r.id)
	}
	r.names = nil
}

// counterName names a shared counter without putting the user name or the
// address itself in the state.
func counterName(kind, key string) string {
	sum := sha256.Sum256([]byte(key))
	return kind + ":" + hex.EncodeToString(sum[:16])
}

type clientAddressKey struct{}

// clientAddress returns the address withClientAddress put in ctx ("" when
// none).
func clientAddress(ctx context.Context) string {
	s, _ := ctx.Value(clientAddressKey{}).(string)
	return s
}

// withClientAddress puts the request's client address (clientIP; nil: the
// host of RemoteAddr) in the request's context, where LocalAuth finds it:
// sp.LocalAuth is not given the request.
func withClientAddress(clientIP func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := ""
		if clientIP != nil {
			addr = clientIP(r)
		} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			addr = host
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientAddressKey{}, addr)))
	})
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
