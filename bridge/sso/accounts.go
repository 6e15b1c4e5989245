package sso

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/saml/sp"
)

// Syncer brings one hub user into the local directory now (bridge.Engine).
type Syncer interface {
	// SyncUser returns the user's local account after applying the sync rules;
	// bridge.ErrGone when the hub does not serve the user to this bridge,
	// bridge.ErrRefused when the rules refuse it.
	SyncUser(ctx context.Context, server, hubUserID string) (local.Account, error)
}

// Directory is what Accounts and LocalAuth read of the local directory
// (bridge/local.Directory has it).
type Directory interface {
	Account(ctx context.Context, id string) (local.Account, error)
	AccountByUsername(ctx context.Context, username string) (local.Account, error)
	AccountByHubID(ctx context.Context, server, hubUserID string) (local.Account, error)
	AccountGroups(ctx context.Context, accountID string) ([]string, error)
	Group(ctx context.Context, id string) (local.Group, error)
}

// Accounts implements sp.Accounts on the local directory.
type Accounts struct {
	Dir  Directory
	Sync Syncer
	// GroupNameTTL is how long a group id → name lookup is reused (default
	// 30 s: a renamed hub audience shows under its new name within it).
	GroupNameTTL time.Duration
	Clock        func() time.Time

	mu     sync.Mutex
	groups map[string]groupName
}

type groupName struct {
	name string
	at   time.Time
}

var _ sp.Accounts = (*Accounts)(nil)

// usable reports whether an account may log in.
func usable(a local.Account) bool { return !a.IsDeleted() && !a.Suspended }

// Login implements sp.Accounts. An account that exists and may log in is used
// as it is (the sync keeps it current). Otherwise the hub is asked now, with
// the bridge's scoped token, and the sync rules applied: a user it does not
// serve is out of scope; a new user gets an account (account mapping, or a
// generated tc… username); an account Connect suspended or deleted comes back
// when the hub serves the user as active. A suspension by the site stays.
func (a *Accounts) Login(ctx context.Context, hub string, id sp.Identity) (sp.LocalUser, error) {
	if id.Subject == "" {
		return sp.LocalUser{}, fmt.Errorf("no subject: %w", sp.ErrNotAllowed)
	}
	acct, err := a.Dir.AccountByHubID(ctx, hub, id.Subject)
	switch {
	case err == nil && usable(acct):
		return a.user(ctx, acct)
	case err == nil && acct.Suspended && acct.SuspendedBy != local.SuspendedByConnect && !acct.IsDeleted():
		return sp.LocalUser{}, fmt.Errorf("account %s suspended by the site: %w", acct.Username, sp.ErrNotAllowed)
	case err != nil && !errors.Is(err, local.ErrNotFound):
		return sp.LocalUser{}, fmt.Errorf("local directory: %w", err)
	}
	acct, err = a.Sync.SyncUser(ctx, hub, id.Subject)
	switch {
	case errors.Is(err, bridge.ErrGone):
		return sp.LocalUser{}, fmt.Errorf("%w: %w", sp.ErrOutOfScope, err)
	case errors.Is(err, bridge.ErrRefused), errors.Is(err, bridge.ErrUnknownServer):
		return sp.LocalUser{}, fmt.Errorf("%w: %w", sp.ErrNotAllowed, err)
	case err != nil:
		return sp.LocalUser{}, err
	case !usable(acct):
		return sp.LocalUser{}, fmt.Errorf("account %s is suspended or deleted: %w", acct.Username, sp.ErrNotAllowed)
	}
	return a.user(ctx, acct)
}

// Allowed implements sp.Accounts: the account as it is now, or ErrNotAllowed
// when it was removed, suspended or deleted since the session started.
func (a *Accounts) Allowed(ctx context.Context, u sp.LocalUser) (sp.LocalUser, error) {
	acct, err := a.Dir.Account(ctx, u.ID)
	if errors.Is(err, local.ErrNotFound) {
		return sp.LocalUser{}, fmt.Errorf("account %s no longer exists: %w", u.ID, sp.ErrNotAllowed)
	}
	if err != nil {
		return sp.LocalUser{}, fmt.Errorf("local directory: %w", err)
	}
	if !usable(acct) {
		return sp.LocalUser{}, fmt.Errorf("account %s is suspended or deleted: %w", acct.Username, sp.ErrNotAllowed)
	}
	return a.user(ctx, acct)
}

// user converts an account, with its groups' names.
func (a *Accounts) user(ctx context.Context, acct local.Account) (sp.LocalUser, error) {
	u := sp.LocalUser{ID: acct.ID, Username: acct.Username, Email: acct.Email, DisplayName: DisplayName(acct), Hub: acct.Server}
	ids, err := a.Dir.AccountGroups(ctx, acct.ID)
	if err != nil {
		return sp.LocalUser{}, fmt.Errorf("local directory: groups of %s: %w", acct.ID, err)
	}
	for _, gid := range ids {
		name, err := a.groupName(ctx, gid)
		if errors.Is(err, local.ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			return sp.LocalUser{}, err
		}
		u.Groups = append(u.Groups, name)
	}
	sort.Strings(u.Groups)
	return u, nil
}

func (a *Accounts) groupName(ctx context.Context, id string) (string, error) {
	now := a.now()
	ttl := a.GroupNameTTL
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	a.mu.Lock()
	if g, ok := a.groups[id]; ok && now.Sub(g.at) < ttl {
		a.mu.Unlock()
		return g.name, nil
	}
	a.mu.Unlock()
	g, err := a.Dir.Group(ctx, id)
	if err != nil {
		return "", fmt.Errorf("local directory: group %s: %w", id, err)
	}
	a.mu.Lock()
	if a.groups == nil || len(a.groups) > 10000 {
		a.groups = map[string]groupName{}
	}
	a.groups[id] = groupName{name: g.Name, at: now}
	a.mu.Unlock()
	return g.Name, nil
}

func (a *Accounts) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

// DisplayName is the account's display name, or its given and family names.
func DisplayName(a local.Account) string {
	if a.DisplayName != "" {
		return a.DisplayName
	}
	return strings.TrimSpace(a.GivenName + " " + a.FamilyName)
}
