package local

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them with context; callers match with errors.Is.
var (
	// ErrNotFound: no account or group has that id or key.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness rule would break — a username (compared
	// case-insensitively) taken by another account, or a (server, hub id) key already
	// held by another account or group. Nothing was written for that item.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is refused (empty or over-long username, unknown auth or
	// kind, a connect account without server or hub id, a manual account with one,
	// an empty field mask, an unknown member id). Nothing was written for that item.
	ErrInvalid = errors.New("invalid")
	// ErrLocked: a site (non-Connect) actor tried to change a locked group — one that
	// Connect made from a hub audience or course. Nothing was written.
	ErrLocked = errors.New("locked")
	// ErrPrivileged: a write would turn a privileged account (a site administrator)
	// into a connect account. Account mapping never takes over privileged accounts;
	// the directory refuses it too. Nothing was written for that item.
	ErrPrivileged = errors.New("privileged account")
	// ErrUnavailable: the backend could not be reached or did not answer (database
	// down, target 5xx after retries, timeout). A write may or may not have happened;
	// every write is idempotent, so the caller may retry it.
	ErrUnavailable = errors.New("local directory unavailable")
	// ErrUnsupported: the backend cannot do this (see Capabilities).
	ErrUnsupported = errors.New("unsupported by this backend")
	// ErrAuthFailed: Authenticate refused the credentials (unknown username, wrong
	// password, no usable hash, deleted account, connect account not allowed).
	ErrAuthFailed = errors.New("authentication failed")
	// ErrSuspended: Authenticate checked a correct password of a suspended account.
	ErrSuspended = errors.New("account suspended")
)

// Auth says who owns an account and how it logs in.
type Auth string

// Account kinds.
const (
	// AuthManual: made by the site; logs in with its local password.
	AuthManual Auth = "manual"
	// AuthConnect: made from a hub user; logs in through SSO, or with a synced
	// password hash when the caller allows it (the hub is down).
	AuthConnect Auth = "connect"
)

// Valid reports whether a is AuthManual or AuthConnect.
func (a Auth) Valid() bool { return a == AuthManual || a == AuthConnect }

// SuspendedByConnect is Account.SuspendedBy when Connect suspended the account (the
// hub user became inactive or left the restricted audience). Reactivation undoes
// only that kind of suspension; a suspension by the site ("") stays.
const SuspendedByConnect = "connect"

// Kind is what a Group stands for.
type Kind string

// Group kinds.
const (
	KindAudience Kind = "audience" // a hub audience (cohort)
	KindCourse   Kind = "course"   // a hub course: members are its enrolled users
	KindLocal    Kind = "local"    // a group of the site itself
)

// Valid reports whether k is one of the group kinds.
func (k Kind) Valid() bool { return k == KindAudience || k == KindCourse || k == KindLocal }

// Limits enforced by every backend (ErrInvalid beyond them).
const (
	MaxUsernameLen = 255  // bytes
	MaxFieldLen    = 1024 // bytes, any other string field (PasswordHash included)
)

// CustomField is one custom profile field.
type CustomField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Account is one local account. Strings are stored as given; Username and Email
// are compared case-insensitively (Unicode simple folding, FoldKey).
type Account struct {
	// ID is the local id, assigned by the backend on create and never changed.
	ID string
	// Username is unique among all accounts (deleted ones included), compared
	// case-insensitively. Connect accounts get a generated "tc…" username.
	Username string
	Auth     Auth
	// Server is the hub's server id for connect accounts, "" for manual ones.
	Server string
	// HubUserID is the hub user's SCIM id (the Connect unique ID); "" for manual.
	// (Server, HubUserID) is unique when set.
	HubUserID string

	Email         string
	EmailVerified bool
	GivenName     string
	FamilyName    string
	DisplayName   string
	IDNumber      string
	Language      string
	Timezone      string
	City          string
	Country       string
	Phone         string
	Title         string
	Organization  string
	Department    string
	Interests     []string
	CustomFields  []CustomField
	// PasswordHash is an argon2id PHC or bcrypt string ("" = none). Never logged.
	PasswordHash string
	// Privileged marks a site administrator: never taken over by account mapping
	// (ErrPrivileged).
	Privileged bool
	Suspended  bool
	// SuspendedBy is SuspendedByConnect or "" (the site); meaningful only while
	// Suspended.
	SuspendedBy string
	// Deleted is the soft-delete time; zero while the account is not deleted.
	Deleted time.Time

	// Created and Modified are set by the backend. Modified changes only when a
	// write changed a stored field.
	Created  time.Time
	Modified time.Time
}

// IsDeleted reports whether the account is soft-deleted.
func (a Account) IsDeleted() bool { return !a.Deleted.IsZero() }

// Fields is a set of Account fields, the mask of a write: an update writes exactly
// the fields in its mask and keeps the stored values of the others (this is how
// the engine honours exclusions: an excluded field is never in its mask).
type Fields uint64

// The writable fields. ID, Created and Modified are never written by callers.
const (
	FieldUsername Fields = 1 << iota
	FieldAuth            // Auth, Server and HubUserID together: they change as one
	FieldEmail
	FieldEmailVerified
	FieldGivenName
	FieldFamilyName
	FieldDisplayName
	FieldIDNumber
	FieldLanguage
	FieldTimezone
	FieldCity
	FieldCountry
	FieldPhone
	FieldTitle
	FieldOrganization
	FieldDepartment
	FieldInterests
	FieldCustomFields
	FieldPasswordHash
	FieldPrivileged
	FieldSuspended // Suspended and SuspendedBy together
	FieldDeleted

	fieldEnd
)

// AllFields is every writable field. SyncFields is every field the sync engine may
// write: all but FieldPrivileged, which only the site sets.
const (
	AllFields  = fieldEnd - 1
	SyncFields = AllFields &^ FieldPrivileged
)

// Has reports whether every field of g is in f.
func (f Fields) Has(g Fields) bool { return f&g == g }

// Put is one item of PutAccounts: an upsert of Account.
//
// The account it writes is found by, in order:
//  1. Account.ID when set: that account is updated (ErrNotFound when absent; never
//     created).
//  2. (Account.Server, Account.HubUserID) when both are set: that connect account
//     is updated, or created when no account holds the key. This is the idempotent
//     create the engine uses: a retry finds the account the first try made.
//  3. Otherwise the account is created (a retry gets ErrConflict on the username).
//
// On update, only the fields in Fields are written (ErrInvalid when Fields is 0;
// to change the key of case 2, use case 1 with FieldAuth). On create, every field
// of Account is written and Fields is ignored.
type Put struct {
	Account Account
	Fields  Fields
}

// Op says what a write did.
type Op string

// Write outcomes.
const (
	OpCreated   Op = "created"
	OpUpdated   Op = "updated"
	OpUnchanged Op = "unchanged" // the stored account already had these values
)

// Result is the outcome of one Put. On success Account is the account as stored
// (ID, Created and Modified set) and Err is nil; on failure Err wraps ErrNotFound,
// ErrConflict, ErrInvalid or ErrPrivileged and nothing was written for that item.
type Result struct {
	Account Account
	Op      Op
	Err     error
}

// AccountQuery selects accounts for ListAccounts and CountAccounts. Zero fields do
// not filter.
type AccountQuery struct {
	// Server keeps accounts with this server id (connect accounts of one hub).
	Server string
	// Auth keeps accounts of this kind.
	Auth Auth
	// Deleted: DeletedExclude (default) skips soft-deleted accounts, DeletedOnly
	// keeps only them, DeletedInclude keeps both.
	Deleted DeletedFilter
	// DeletedBefore (with DeletedOnly) keeps accounts soft-deleted before it: the
	// cleanup task's accounts past their grace period.
	DeletedBefore time.Time
	// After is the opaque cursor of the previous page ("" = first page).
	After string
	// Limit is the page size; ≤ 0 means 100, and backends may clamp it (at most
	// 1000 are ever returned).
	Limit int
}

// DeletedFilter selects soft-deleted accounts in an AccountQuery.
type DeletedFilter int

// Deleted filters.
const (
	DeletedExclude DeletedFilter = iota
	DeletedOnly
	DeletedInclude
)

// GroupQuery selects groups for ListGroups. Zero fields do not filter.
type GroupQuery struct {
	Server string
	Kind   Kind
	After  string // opaque cursor ("" = first page)
	Limit  int    // as AccountQuery.Limit
}

// Group is a local group. Members are never loaded with it (a course may have
// 100k members): page them with GroupMembers.
type Group struct {
	// ID is the local id, assigned by the backend.
	ID   string
	Name string
	Kind Kind
	// Server and HubGroupID identify the hub group it was made from ("" for a
	// local group). (Server, HubGroupID) is unique when set.
	Server     string
	HubGroupID string
	// Locked groups were made by Connect; only ActorConnect may change them.
	Locked   bool
	Created  time.Time
	Modified time.Time
}

// Actor is who makes a group write. Site administrators (ActorSite) cannot change
// a locked group (ErrLocked); the sync engine (ActorConnect) can.
type Actor int

// Actors.
const (
	ActorSite Actor = iota
	ActorConnect
)

// MaxBatch is the most items a batch write (PutAccounts, member changes,
// PurgeAccounts) accepts; more is ErrInvalid. Callers split larger lists.
const MaxBatch = 1000

// Directory is a bridge's local directory. All methods are safe for concurrent
// use. Any method may also fail with ErrUnavailable (wrapped).
type Directory interface {
	// PutAccounts upserts accounts (see Put), one Result per item in order. SQL
	// backends write the whole batch in one transaction: an item that fails is
	// skipped, the others commit together. When the returned error is non-nil
	// (ErrUnavailable, ErrInvalid for more than MaxBatch items, ctx done) the
	// results are nil and, on a transactional backend, nothing was written; on a
	// non-transactional one (Capabilities.Transactions false) some items may have
	// been written, and a retry of the whole batch is safe.
	PutAccounts(ctx context.Context, puts []Put) ([]Result, error)

	// Account returns the account with id (deleted ones too). ErrNotFound.
	Account(ctx context.Context, id string) (Account, error)
	// AccountByUsername finds an account case-insensitively (deleted ones too).
	// ErrNotFound.
	AccountByUsername(ctx context.Context, username string) (Account, error)
	// AccountByHubID returns the account linked to (server, hubUserID), deleted
	// ones too. ErrNotFound.
	AccountByHubID(ctx context.Context, server, hubUserID string) (Account, error)
	// AccountsByHubID returns the accounts of server linked to any of hubUserIDs
	// (at most MaxBatch, else ErrInvalid), keyed by hub user id; absent ids are
	// absent from the map. Deleted accounts are included.
	AccountsByHubID(ctx context.Context, server string, hubUserIDs []string) (map[string]Account, error)
	// AccountsByEmail returns every account whose email equals email
	// case-insensitively, ordered by ID, deleted ones included — all of them, so the
	// caller can see an ambiguous match. An empty email matches nothing.
	AccountsByEmail(ctx context.Context, email string) ([]Account, error)
	// AccountsByIDNumber returns every account whose ID number equals idNumber
	// exactly, ordered by ID, deleted ones included. An empty one matches nothing.
	AccountsByIDNumber(ctx context.Context, idNumber string) ([]Account, error)
	// ListAccounts returns one page of the accounts matching q in a stable order
	// (by id) and the cursor of the next page ("" after the last). An account
	// present for the whole iteration is returned exactly once; writes during it
	// are safe. A page may hold fewer than q.Limit accounts, even none, while more
	// follow (a SCIM target filters some out after fetching): only next == "" ends
	// the iteration. A malformed q.After is ErrInvalid.
	ListAccounts(ctx context.Context, q AccountQuery) (accounts []Account, next string, err error)
	// CountAccounts counts the accounts matching q (After and Limit ignored).
	CountAccounts(ctx context.Context, q AccountQuery) (int64, error)
	// PurgeAccounts removes soft-deleted accounts and their memberships for good
	// (at most MaxBatch ids, else ErrInvalid). Ids that are absent or not
	// soft-deleted are left alone: a hard delete always follows a soft delete. It
	// returns how many it removed; a retry removes nothing more.
	PurgeAccounts(ctx context.Context, ids []string) (int, error)

	// PutGroup upserts a group, found by g.ID when set (ErrNotFound when absent),
	// else by (g.Server, g.HubGroupID) when set (created when absent), else created.
	// It writes Name, Kind, Server, HubGroupID and Locked. ErrLocked when actor is
	// ActorSite and the stored group is locked, or when ActorSite creates a locked
	// group; ErrConflict when another group holds (Server, HubGroupID) (or the name,
	// without Capabilities.DuplicateGroupNames); ErrInvalid for an empty name or
	// unknown kind.
	PutGroup(ctx context.Context, actor Actor, g Group) (Group, Op, error)
	// Group returns the group with id (members are not loaded). ErrNotFound.
	Group(ctx context.Context, id string) (Group, error)
	// GroupByHubID returns the group made from (server, hubGroupID). ErrNotFound.
	GroupByHubID(ctx context.Context, server, hubGroupID string) (Group, error)
	// ListGroups returns one page of groups matching q, ordered by id, and the
	// cursor of the next page ("" after the last).
	ListGroups(ctx context.Context, q GroupQuery) (groups []Group, next string, err error)
	// DeleteGroup removes a group and its memberships (never its member accounts).
	// ErrNotFound; ErrLocked as PutGroup.
	DeleteGroup(ctx context.Context, actor Actor, id string) error

	// AddMembers adds accounts to a group (at most MaxBatch ids); ids already
	// members are skipped. It returns how many it added. ErrNotFound for the group;
	// ErrInvalid when an account id is unknown (nothing added); ErrLocked as
	// PutGroup.
	AddMembers(ctx context.Context, actor Actor, groupID string, accountIDs []string) (int, error)
	// RemoveMembers removes accounts from a group (at most MaxBatch ids); ids that
	// are not members are skipped. It returns how many it removed. ErrNotFound for
	// the group; ErrLocked as PutGroup.
	RemoveMembers(ctx context.Context, actor Actor, groupID string, accountIDs []string) (int, error)
	// SetMembers makes accountIDs (any number, duplicates ignored) the whole member
	// list: it adds and removes the difference, in batches (never a rewrite of the
	// whole list), and returns how many it added and removed. Errors as AddMembers;
	// on a non-transactional backend a failure may leave part of the difference
	// applied, and a retry completes it.
	SetMembers(ctx context.Context, actor Actor, groupID string, accountIDs []string) (added, removed int, err error)
	// GroupMembers returns one page of the group's member account ids, in a stable
	// order, and the cursor of the next page ("" after the last). limit as
	// AccountQuery.Limit. ErrNotFound for the group.
	GroupMembers(ctx context.Context, groupID, after string, limit int) (ids []string, next string, err error)
	// AccountGroups returns the ids of the groups the account is a member of,
	// sorted. ErrNotFound for the account.
	AccountGroups(ctx context.Context, accountID string) ([]string, error)

	// Capabilities says what this backend can do.
	Capabilities() Capabilities
	// Ping checks the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the backend.
	Close() error
}

// Capabilities says what a backend can store and do. SQL backends have them all;
// a SCIM target has what the site application's SCIM endpoint offers.
type Capabilities struct {
	// Transactions: a batch write is all-or-nothing apart from its failed items.
	Transactions bool
	// Fields is the set of account fields stored and read back exactly. A field
	// outside it reads as its zero value (or, for Suspended of a soft-deleted
	// account, as true). PasswordHashes, SoftDelete and Privileged below repeat
	// three of them.
	Fields Fields
	// PasswordHashes: PasswordHash is stored and read back (a SCIM endpoint never
	// returns passwords).
	PasswordHashes bool
	// SoftDelete: Deleted is stored and read back. Otherwise a soft delete is
	// stored as a suspension (the account cannot log in), listings cannot select
	// deleted accounts (DeletedOnly is ErrUnsupported) and PurgeAccounts is
	// ErrUnsupported: the account stays suspended until an operator removes it.
	SoftDelete bool
	// Privileged: the Privileged flag is stored.
	Privileged bool
	// LocalMetadata: SuspendedBy round-trips (otherwise it reads as "" and the
	// engine cannot tell its own suspensions from the site's).
	LocalMetadata bool
	// DuplicateGroupNames: two groups may share a name. A backend without it (a
	// SCIM endpoint that keeps displayName unique) refuses the second with
	// ErrConflict.
	DuplicateGroupNames bool
	// SiteCustomFields: the custom fields are shared with the site application
	// (a SCIM target's Connect extension). A put with FieldCustomFields adds and
	// changes the fields it names and removes none: a field it leaves out — the
	// site's own, or one the hub no longer sends — stays.
	SiteCustomFields bool
}

// Limit returns q's page size after the default and the clamp (1..1000).
func Limit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > MaxBatch:
		return MaxBatch
	}
	return n
}

// Record is a small durable record of the bridge itself kept beside the accounts:
// a connected server, a setting, a hashed setup secret. Kind namespaces keys
// ("server", "setting", "setup-secret"); Value is the caller's own encoding.
type Record struct {
	Kind  string
	Key   string
	Value []byte
	// Expires, when set, is when the record stops existing: an expired record is
	// never returned and is removed by DeleteExpiredRecords.
	Expires  time.Time
	Modified time.Time // set by the backend
}

// Records is an optional ability of a Directory (SQL backends have it; a SCIM
// target does not): the bridge's own configuration in the same database as the
// accounts, so one --store holds a bridge's whole durable state.
type Records interface {
	// PutRecord creates or replaces the record (Kind, Key). ErrInvalid for an empty
	// kind or key, or a value over 1 MiB.
	PutRecord(ctx context.Context, r Record) error
	// GetRecord returns an unexpired record. ErrNotFound.
	GetRecord(ctx context.Context, kind, key string) (Record, error)
	// TakeRecord reads and deletes an unexpired record atomically: of concurrent
	// calls for one record exactly one succeeds (single-use setup secrets).
	// ErrNotFound.
	TakeRecord(ctx context.Context, kind, key string) (Record, error)
	// DeleteRecord removes a record; an absent one is not an error.
	DeleteRecord(ctx context.Context, kind, key string) error
	// ListRecords returns the unexpired records of kind, ordered by key.
	ListRecords(ctx context.Context, kind string) ([]Record, error)
	// DeleteExpiredRecords removes records expired at now and returns how many.
	DeleteExpiredRecords(ctx context.Context) (int, error)
}

// TaskLease is a task lock kept beside the records: the lock of (Scope, Name)
// held by Owner until Expires, with its fencing token. Tokens of one (Scope,
// Name) strictly increase with every lease issued and are seeded from the clock
// in milliseconds; a released or lapsed lock keeps its last token, so a stale
// holder stays refused.
type TaskLease struct {
	Scope   string
	Name    string
	Owner   string
	Token   int64
	Expires time.Time
	// Previous is the owner of the lease before this one ("" for the first),
	// set by AcquireLock. A holder that caches what the lock guards in its own
	// memory drops that cache when another owner held the lock in between.
	Previous string
}

// TaskPlan is the last plan of one task of a scope, kept beside the records so
// that every process sharing the database (a serving bridge and the CLI) sees
// and decides the same held plan. Data is the caller's own encoding.
type TaskPlan struct {
	Scope  string
	Task   string
	ID     string
	Status string
	Reason string
	At     time.Time
	Data   []byte
}

// TaskRecords is an optional ability of Records (the SQL backends have it):
// task locks with fencing tokens and the tasks' plans in the records database,
// so processes that share it exclude each other and see one another's plans.
// Every call is one statement (a failed conditional write may read once more to
// say why). Scope, name, task, owner and id are non-empty, at most MaxFieldLen
// bytes (ErrInvalid otherwise).
type TaskRecords interface {
	// AcquireLock takes the lock of (scope, name) for ttl and returns the lease,
	// with a new token. When owner already holds it unexpired (a retried call) it
	// extends the lease and keeps the token. ErrConflict when another owner holds
	// it; ErrInvalid for ttl ≤ 0.
	AcquireLock(ctx context.Context, scope, name, owner string, ttl time.Duration) (TaskLease, error)
	// RenewLock extends l to ttl from now while l (owner and token) is the newest
	// lease of its lock, even after it lapsed or was released if nobody acquired
	// it since. ErrConflict otherwise.
	RenewLock(ctx context.Context, l TaskLease, ttl time.Duration) error
	// ReleaseLock frees the lock while l is its newest lease; releasing twice, or
	// a lock never taken, is not an error. ErrConflict when a newer lease exists.
	ReleaseLock(ctx context.Context, l TaskLease) error
	// LockToken returns the newest token of (scope, name), held or not.
	// ErrNotFound when it was never locked.
	LockToken(ctx context.Context, scope, name string) (int64, error)
	// LockHolder returns the unexpired lease of (scope, name). ErrNotFound when
	// the lock is free.
	LockHolder(ctx context.Context, scope, name string) (TaskLease, error)

	// SaveTaskPlan stores p as the plan of (p.Scope, p.Task), replacing the
	// previous one. When token is not 0 the write happens only while token is
	// the newest token of the lock (p.Scope, lock) — in the same statement —
	// and fails with ErrConflict otherwise, writing nothing.
	SaveTaskPlan(ctx context.Context, p TaskPlan, lock string, token int64) error
	// TaskPlan returns the plan of (scope, task). ErrNotFound.
	TaskPlan(ctx context.Context, scope, task string) (TaskPlan, error)
	// TaskPlans returns the plans of scope, ordered by task.
	TaskPlans(ctx context.Context, scope string) ([]TaskPlan, error)
	// SetTaskPlanStatus sets the status and At of the plan of (scope, task) only
	// if its ID is id. ErrNotFound when the task has no plan; ErrConflict when
	// its plan has another ID.
	SetTaskPlanStatus(ctx context.Context, scope, task, id, status string, at time.Time) error
	// DeleteTaskPlans removes every plan of scope (locks stay).
	DeleteTaskPlans(ctx context.Context, scope string) error
}
