package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/client"
)

// Sentinel errors of the engine.
var (
	// ErrGone: the source has no such resource (404): deleted there, or out of
	// this bridge's scope.
	ErrGone = errors.New("gone from the source")
	// ErrNoFeed: the source has no Changes feed (a plain SCIM server).
	ErrNoFeed = errors.New("source has no changes feed")
	// ErrExpiredCursor: the source no longer serves the stored feed cursor; a
	// full reconcile follows.
	ErrExpiredCursor = errors.New("changes cursor expired")
	// ErrIncomplete: a listing failed part-way or returned a short or
	// inconsistent page; nothing may be concluded from what it did not list.
	ErrIncomplete = errors.New("listing incomplete")
	// ErrBusy: another replica (or run) holds the task lock.
	ErrBusy = errors.New("task is running elsewhere")
	// ErrUnknownServer: no connected server has that id or name.
	ErrUnknownServer = errors.New("unknown server")
	// ErrNoRecords: the local directory cannot keep the bridge's own records
	// (servers, settings).
	ErrNoRecords = errors.New("the local directory store cannot hold bridge settings")
	// ErrInvalidSetting: a setting key or value is refused.
	ErrInvalidSetting = errors.New("invalid setting")
	// ErrNoPlan: the task has no stored plan (or none held).
	ErrNoPlan = errors.New("no plan")
)

// Source is where the engine reads identities: the hub, or any SCIM 2.0 server.
// Listings stream page by page; an error means the listing is incomplete (the
// pages already passed to fn stand, nothing may be concluded about the rest).
type Source interface {
	// ListUsers passes every user in scope to fn, a page at a time.
	ListUsers(ctx context.Context, fn func([]scim.User) error) error
	// ListGroups passes every group in scope (without members) to fn.
	ListGroups(ctx context.Context, fn func([]scim.Group) error) error
	// GetUser returns one user. ErrGone when the source has none.
	GetUser(ctx context.Context, id string) (scim.User, error)
	// GroupMembers returns the member ids of a group. ErrGone when the source
	// has no such group.
	GroupMembers(ctx context.Context, id string) ([]string, error)
}

// ChangeFeed is an optional ability of a Source: the hub's Changes feed
// (DESIGN.md §3.1).
type ChangeFeed interface {
	// Changes returns the changes after cursor (cursor "" returns none and the
	// head), waiting up to wait for the first. ErrNoFeed when the source turns out
	// to have no feed; ErrExpiredCursor when the cursor is no longer served.
	Changes(ctx context.Context, cursor string, count int, wait time.Duration) (client.ChangesPage, error)
}

// ModifiedLister is an optional ability of a Source: listing only users whose
// meta.lastModified is at or after since (increments from a plain SCIM server).
type ModifiedLister interface {
	ListUsersModifiedSince(ctx context.Context, since time.Time, fn func([]scim.User) error) error
}

// Target is the local directory as the engine writes it. bridge/local.Directory
// satisfies it.
type Target interface {
	PutAccounts(ctx context.Context, puts []local.Put) ([]local.Result, error)
	Account(ctx context.Context, id string) (local.Account, error)
	AccountByUsername(ctx context.Context, username string) (local.Account, error)
	AccountByHubID(ctx context.Context, server, hubUserID string) (local.Account, error)
	AccountsByHubID(ctx context.Context, server string, hubUserIDs []string) (map[string]local.Account, error)
	AccountsByEmail(ctx context.Context, email string) ([]local.Account, error)
	AccountsByIDNumber(ctx context.Context, idNumber string) ([]local.Account, error)
	ListAccounts(ctx context.Context, q local.AccountQuery) ([]local.Account, string, error)
	CountAccounts(ctx context.Context, q local.AccountQuery) (int64, error)
	PurgeAccounts(ctx context.Context, ids []string) (int, error)
	PutGroup(ctx context.Context, actor local.Actor, g local.Group) (local.Group, local.Op, error)
	Group(ctx context.Context, id string) (local.Group, error)
	GroupByHubID(ctx context.Context, server, hubGroupID string) (local.Group, error)
	ListGroups(ctx context.Context, q local.GroupQuery) ([]local.Group, string, error)
	DeleteGroup(ctx context.Context, actor local.Actor, id string) error
	AddMembers(ctx context.Context, actor local.Actor, groupID string, accountIDs []string) (int, error)
	SetMembers(ctx context.Context, actor local.Actor, groupID string, accountIDs []string) (added, removed int, err error)
	GroupMembers(ctx context.Context, groupID, after string, limit int) ([]string, string, error)
	AccountGroups(ctx context.Context, accountID string) ([]string, error)
	Capabilities() local.Capabilities
	Ping(ctx context.Context) error
}

// Records is where the bridge keeps its own configuration (connected servers,
// settings). bridge/local.Records satisfies it.
type Records interface {
	PutRecord(ctx context.Context, r local.Record) error
	GetRecord(ctx context.Context, kind, key string) (local.Record, error)
	DeleteRecord(ctx context.Context, kind, key string) error
	ListRecords(ctx context.Context, kind string) ([]local.Record, error)
	DeleteExpiredRecords(ctx context.Context) (int, error)
}

// State is what the engine remembers between runs. bridge/state.State
// satisfies it.
type State interface {
	Apply(ctx context.Context, hub string, f state.Fence, b state.Batch) (map[string]state.Link, error)
	LinkByLocal(ctx context.Context, hub string, kind state.Kind, localID string) (state.Link, error)
	CountLinks(ctx context.Context, hub string, kind state.Kind) (int64, error)
	Cursor(ctx context.Context, hub, name string) (string, error)
	SetCursor(ctx context.Context, hub string, f state.Fence, name, value string) error
	SavePlan(ctx context.Context, hub string, f state.Fence, p state.Plan) error
	GetPlan(ctx context.Context, hub, task string) (state.Plan, error)
	Plans(ctx context.Context, hub string) ([]state.Plan, error)
	SetPlanStatus(ctx context.Context, hub, task, id string, status state.PlanStatus, at time.Time) error
	Acquire(ctx context.Context, hub, task, owner string, ttl time.Duration) (state.Lease, error)
	Renew(ctx context.Context, hub string, l state.Lease, ttl time.Duration) error
	Release(ctx context.Context, hub string, l state.Lease) error
	CheckFence(ctx context.Context, hub string, f state.Fence) error
	LockHolder(ctx context.Context, hub, task string) (state.Lease, time.Duration, error)
	Ready(ctx context.Context, hub string) (bool, error)
	MarkReady(ctx context.Context, hub string, f state.Fence) error
	Wipe(ctx context.Context, hub string) error
	Ping(ctx context.Context) error
}

// The contracts satisfy what the engine declares.
var (
	_ Target  = local.Directory(nil)
	_ Records = local.Records(nil)
	_ State   = state.State(nil)
)
