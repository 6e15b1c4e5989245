package store

import (
	"context"
	"time"
)

// Client is a client system: one bridge's site registered on the hub, with the
// options of a Totara Connect client (DESIGN.md §4). Its scope decides what the
// bridge's token can read.
type Client struct {
	ID   string
	Name string
	// URL is the bridge's Client URL (unique, compared exactly after the caller
	// normalised it).
	URL string
	// EntityID is the bridge's SAML SP entity ID, registered with the IdP.
	EntityID string
	// RestrictAudience is the id of the audience whose members are the only users
	// the client sees; "" means every user.
	RestrictAudience string
	// AddNewAudiences and AddNewCourses make every audience or course created
	// afterwards a synced group of the client.
	AddNewAudiences bool
	AddNewCourses   bool
	// Groups are the ids of the synced audiences and courses (ordered, unique).
	// Groups deleted from the directory drop out of the list.
	Groups  []string
	Comment string
	// ScopeVersion starts at 1 and grows with every change of RestrictAudience or
	// Groups made through UpdateClient; Changes cursors carry it, so a scope edit
	// expires them and the bridge runs a full reconcile.
	ScopeVersion int64
	Created      time.Time
	Modified     time.Time
}

// Scope is what one client-scoped (bridge) token may read. A zero Scope is never
// used: unscoped callers pass a nil *Scope.
type Scope struct {
	// ClientID names the client whose synced groups are visible.
	ClientID string
	// RestrictAudience, when set, limits users (and group members) to the members
	// of that audience.
	RestrictAudience string
	// Version is the client's ScopeVersion when the scope was read.
	Version int64
}

// Clients is an optional ability of a Store: the client-system registry and the
// scope questions the SCIM server asks for bridge tokens. Both SQL backends
// implement it and pass storetest.
type Clients interface {
	// CreateClient stores c with a bridge token (t.ClientID is set to the new
	// client's id) in one transaction: both or neither. It assigns ID,
	// ScopeVersion 1, Created and Modified. ErrConflict if the URL or name is
	// taken (or the token name); ErrInvalid for a missing name or URL or a
	// group id that names no group (or RestrictAudience that is not an audience).
	CreateClient(ctx context.Context, c Client, t Token) (Client, error)
	// GetClient returns ErrNotFound if no client has id.
	GetClient(ctx context.Context, id string) (Client, error)
	// ClientByURL finds a client by its exact URL. ErrNotFound.
	ClientByURL(ctx context.Context, url string) (Client, error)
	// ListClients returns every client ordered by name.
	ListClients(ctx context.Context) ([]Client, error)
	// UpdateClient reads the client, calls fn and stores the result in one
	// transaction. ID, Created and ScopeVersion are kept from the stored client;
	// ScopeVersion grows when RestrictAudience or Groups changed. fn's error
	// aborts the update and is returned unchanged. ErrNotFound, ErrConflict,
	// ErrInvalid as for CreateClient.
	UpdateClient(ctx context.Context, id string, fn func(*Client) error) (Client, error)
	// DeleteClient removes the client and revokes its tokens in one transaction.
	// ErrNotFound.
	DeleteClient(ctx context.Context, id string) error
	// ReplaceClientToken revokes every token of the client and stores t (with
	// t.ClientID set) in one transaction. ErrNotFound.
	ReplaceClientToken(ctx context.Context, id string, t Token) (Token, error)

	// InScope reports which of the user ids are visible in scope (members of
	// its restrict audience, or existing users when it has none). Unknown ids
	// are absent from the result.
	InScope(ctx context.Context, scope Scope, userIDs []string) (map[string]bool, error)
	// ScopeGroups reports which of the group ids are synced groups of the
	// scope's client; groups deleted since stay reported, so that their removal
	// reaches the bridge.
	ScopeGroups(ctx context.Context, scope Scope, groupIDs []string) (map[string]bool, error)
}
