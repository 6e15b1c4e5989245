// Package store is the hub directory contract: users, groups and their members,
// admin and bridge tokens (hashed), settings, the change journal and the audit log.
// Backends live beside it (sqlite/, postgres/) and all pass storetest.Run.
//
// It imports package scim and scim/filter only.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
)

// Sentinel errors. Backends wrap them with context; callers match with errors.Is.
var (
	ErrNotFound           = errors.New("not found")
	ErrConflict           = errors.New("conflict")            // uniqueness violated
	ErrPreconditionFailed = errors.New("precondition failed") // If-Match version mismatch
	ErrExpiredCursor      = errors.New("expired cursor")      // journal trimmed past the cursor
	ErrInvalid            = errors.New("invalid")             // bad input the store refuses
)

// Query selects a page of resources. Filter is nil for "all". SortBy is a resolved
// attribute path or nil for the default order (creation order, stable).
//
// Paging is either index based (StartIndex ≥ 1, OFFSET) or cursor based (RFC 9865):
// when UseCursor is set, Cursor "" means the first page and the page's NextCursor
// continues it. Count is already clamped by the caller; Count == 0 returns only
// the total.
type Query struct {
	Filter     filter.Expr
	SortBy     *scim.AttrPath
	Descending bool
	StartIndex int
	Count      int
	UseCursor  bool
	Cursor     string
	// IDs, when non-nil, limits the listing to the resources with these ids
	// (at most 1,000; ids of no resource are left out): one statement loads
	// a batch of known resources, e.g. those of a Changes page.
	IDs []string
	// Members asks ListGroups to load each group's members.
	Members bool
	// Scope, when set, limits the listing to what a client may read: users in
	// its restrict audience, its synced groups, and members and groups
	// attributes cut to those (store.Clients).
	Scope *Scope
}

// Page is one page of a listing. Total counts every match of the filter.
type Page[T any] struct {
	Total      int
	Items      []T
	NextCursor string // cursor paging only; "" on the last page
}

// MemberOps collects membership changes applied by UpdateGroup in the same
// transaction as the group's own attributes. Replace (when non-nil) first removes
// every member; then Remove and Add apply. Values are user or group ids; unknown
// ids make the update fail with ErrInvalid.
type MemberOps struct {
	Replace *[]scim.Member
	Add     []scim.Member
	Remove  []string
	// RemoveAll removes every member (PATCH remove "members").
	RemoveAll bool
}

// Empty reports whether ops changes nothing.
func (m *MemberOps) Empty() bool {
	return m.Replace == nil && len(m.Add) == 0 && len(m.Remove) == 0 && !m.RemoveAll
}

// Token is an API token. Only the SHA-256 hash of the secret is stored.
type Token struct {
	ID       string
	Name     string
	Hash     []byte
	ReadOnly bool
	// ClientID is set for bridge tokens (scoped to a client system); "" for admin tokens.
	ClientID string
	Created  time.Time
	LastUsed time.Time
	Revoked  bool
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID     int64
	At     time.Time
	Actor  string // token name, "cli", user id
	Action string // "user.create", "token.revoke", ...
	Target string
	Detail string
}

type auditKey struct{}

// WithAudit returns ctx under which the user and group writes of Store
// (CreateUser, ReplaceUser, UpdateUser, DeleteUser and their group twins; not
// Batcher.CreateUsers) append e to the audit log in the same transaction as the
// change, so a change is never without its record nor a record without its
// change. The store sets e.At to the write's time when zero, e.Target to the
// resource's id when empty and e.Detail to its userName or displayName when
// empty. A write that changes nothing records nothing.
func WithAudit(ctx context.Context, e AuditEntry) context.Context {
	return context.WithValue(ctx, auditKey{}, e)
}

// AuditFrom returns the entry WithAudit put in ctx.
func AuditFrom(ctx context.Context) (AuditEntry, bool) {
	e, ok := ctx.Value(auditKey{}).(AuditEntry)
	return e, ok
}

// JournalEntry is one row of the change journal. The store writes one in the same
// transaction as every user or group change. A membership change writes one row
// for the group (ResourceType "Group", Op upsert, Reason ReasonMembers when only
// its members changed) plus one per member that joined or left (ResourceType
// "User", or "Group" for a nested group; Op upsert; Reason ReasonMembers), since
// that member's "groups" changed. Deleting a user or group writes ReasonMembers
// rows for the groups it was a member of.
type JournalEntry struct {
	Seq          int64
	ResourceType string // "User" | "Group"
	ID           string
	Op           string // scim.ChangeUpsert | scim.ChangeRemove
	Reason       string
	At           time.Time
	// Via is the group of a membership row; on a deleted user's row it lists
	// the groups the user was in, space separated with a space at each end.
	Via string
}

// Stats is the directory size for metrics.
type Stats struct {
	Users, Groups, Members int64
}

// Store is the hub directory. All methods are safe for concurrent use. Write
// methods are atomic: a change and its journal entry commit together or not at all.
//
// Unchanged writes: a replace or update whose result equals the stored resource
// (canonical form, members included) writes nothing — no version bump, no new
// meta.lastModified, no journal entry, no audit entry — and returns the stored
// resource. Provisioning clients (Entra ID) repeat idempotent PATCHes; each
// would otherwise reach every bridge through the Changes feed.
type Store interface {
	// CreateUser assigns id, meta.created/lastModified and version 1. It never stores
	// u.Password: callers hash a clear password into Connect.PasswordHash first (the
	// store clears Password). Returns ErrConflict if userName (case-insensitive) is taken.
	CreateUser(ctx context.Context, u scim.User) (scim.User, error)
	// GetUser returns ErrNotFound if no user has id. The result has Meta set and
	// Groups filled.
	GetUser(ctx context.Context, id string) (scim.User, error)
	// ReplaceUser replaces every attribute of the user u.ID. When ifMatch > 0 and the
	// stored version differs it returns ErrPreconditionFailed. ErrNotFound, ErrConflict.
	// A replacement equal to the stored user writes nothing (see Unchanged writes).
	ReplaceUser(ctx context.Context, u scim.User, ifMatch int64) (scim.User, error)
	// UpdateUser reads the user, calls fn and stores the result, all in one
	// transaction (PATCH). fn's error aborts the update and is returned unchanged.
	// When fn leaves the user as stored nothing is written (see Unchanged writes).
	UpdateUser(ctx context.Context, id string, ifMatch int64, fn func(*scim.User) error) (scim.User, error)
	// DeleteUser removes the user and its memberships. ErrNotFound, ErrPreconditionFailed.
	DeleteUser(ctx context.Context, id string, ifMatch int64) error
	// ListUsers returns the users matching q, compiled to SQL (never scanned in Go).
	ListUsers(ctx context.Context, q Query) (Page[scim.User], error)
	// UserByUserName finds a user case-insensitively. ErrNotFound.
	UserByUserName(ctx context.Context, userName string) (scim.User, error)

	// CreateGroup stores g and its members. ErrConflict if displayName is taken
	// (case-insensitive) within the same kind; ErrInvalid for an unknown member.
	CreateGroup(ctx context.Context, g scim.Group) (scim.Group, error)
	// GetGroup returns ErrNotFound. Members are loaded only when members is true.
	GetGroup(ctx context.Context, id string, members bool) (scim.Group, error)
	// ReplaceGroup replaces attributes and (when g.Members != nil or replaceMembers)
	// the member list. ErrNotFound, ErrPreconditionFailed, ErrConflict, ErrInvalid.
	// When attributes and members end as stored nothing is written (see Unchanged
	// writes); the result then carries the stored members when g.Members != nil.
	ReplaceGroup(ctx context.Context, g scim.Group, ifMatch int64) (scim.Group, error)
	// UpdateGroup reads the group without its members, calls fn, then stores the
	// attributes and applies the collected MemberOps row by row — the member list is
	// never read or written whole. The returned group has no members loaded. When
	// the attributes end as stored and no membership changed (members added that
	// were there, removed that were not), nothing is written (see Unchanged writes).
	UpdateGroup(ctx context.Context, id string, ifMatch int64, fn func(*scim.Group, *MemberOps) error) (scim.Group, error)
	// DeleteGroup. ErrNotFound, ErrPreconditionFailed.
	DeleteGroup(ctx context.Context, id string, ifMatch int64) error
	// ListGroups returns the groups matching q (members only when q.Members).
	ListGroups(ctx context.Context, q Query) (Page[scim.Group], error)

	// CreateToken stores t (t.Hash set by the caller, t.ID assigned when empty).
	CreateToken(ctx context.Context, t Token) (Token, error)
	// TokenByHash returns the unrevoked token with that hash. ErrNotFound.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// ListTokens returns every token (hashes included; callers never print them).
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks the token with that id or name revoked. ErrNotFound.
	RevokeToken(ctx context.Context, idOrName string) error
	// TouchToken records a use (best effort, at most once a minute per token).
	TouchToken(ctx context.Context, id string, at time.Time) error

	// Setting returns a hub setting's value, ErrNotFound when unset.
	Setting(ctx context.Context, key string) (string, error)
	// SetSetting stores a hub setting.
	SetSetting(ctx context.Context, key, value string) error

	// JournalHead returns the highest journal sequence number (0 when empty).
	JournalHead(ctx context.Context) (int64, error)
	// Journal returns up to limit entries with Seq > after in order. When entries
	// after `after` were trimmed (after < the oldest retained seq - 1) it returns
	// ErrExpiredCursor.
	Journal(ctx context.Context, after int64, limit int) ([]JournalEntry, error)
	// TrimJournal deletes entries older than before, keeping at least the newest one
	// so the head survives. Returns how many it deleted.
	TrimJournal(ctx context.Context, before time.Time) (int64, error)

	// Audit appends to the audit log.
	Audit(ctx context.Context, e AuditEntry) error
	// AuditLog returns up to limit entries, newest first.
	AuditLog(ctx context.Context, limit int) ([]AuditEntry, error)

	// Stats counts users, groups and memberships.
	Stats(ctx context.Context) (Stats, error)
	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// Batcher is an optional ability: CreateUsers stores many users in one transaction
// (bulk import). It returns one error per input (nil on success); a failed user is
// not written, the others are.
type Batcher interface {
	CreateUsers(ctx context.Context, us []scim.User) ([]scim.User, []error)
}
