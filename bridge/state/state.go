package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Sentinel errors. Backends wrap them with context; callers match with errors.Is.
var (
	// ErrNotFound: no such link, cursor, plan, session or lock holder.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the arguments are refused (empty or malformed id, unknown kind,
	// duplicate ids in one batch, non-positive TTL). Nothing was written.
	ErrInvalid = errors.New("invalid")
	// ErrConflict: the write contradicts stored state (a local id already linked to
	// another hub id; a plan id that is not the stored plan's). Nothing was written.
	ErrConflict = errors.New("conflict")
	// ErrLocked: Acquire found the task lock held by another owner.
	ErrLocked = errors.New("locked by another owner")
	// ErrLockLost: the lease (or fence) is no longer the newest of its task: another
	// owner acquired the lock since. A fenced write with it was refused and nothing
	// was written; the holder must stop its run.
	ErrLockLost = errors.New("lock lost")
	// ErrUnavailable: the backend could not be reached or did not answer (Redis
	// down, connection lost). The write may or may not have happened; since every
	// write is idempotent, the caller may retry it.
	ErrUnavailable = errors.New("state unavailable")
)

// Kind selects one of the link maps.
type Kind string

// The link maps.
const (
	KindUser  Kind = "user"  // hub user id → local account id
	KindGroup Kind = "group" // hub group id → local group id
)

// Valid reports whether k is KindUser or KindGroup.
func (k Kind) Valid() bool { return k == KindUser || k == KindGroup }

// Link ties a hub resource to the local object made from it. Hash is the content
// hash of the hub resource as last applied ("" when unknown); the engine skips an
// update whose hash did not change.
type Link struct {
	HubID   string
	LocalID string
	Hash    string
}

// Batch is one round trip of link-map work on one kind: Delete, then Put, then
// Cursors are written atomically (all or nothing), then Get is read (seeing those
// writes). A full reconcile commits page k and reads page k+1 in one Batch.
//
// Put replaces the whole link of each HubID (LocalID and Hash); relinking a hub id
// to another local id drops its old reverse entry. Deleting an absent link is not
// an error. Hub ids within Put must be distinct, local ids within Put must be
// distinct, and no hub id may be both put and deleted (ErrInvalid).
type Batch struct {
	Kind    Kind
	Delete  []string          // hub ids
	Put     []Link            // links to store
	Cursors map[string]string // cursor name → value, committed with the links
	Get     []string          // hub ids to read after the writes
}

// Fence guards a write with a task lease: the write happens only while no newer
// lease of Task has been issued. The zero Fence means "not fenced" (CLI commands,
// tests).
type Fence struct {
	Task  string
	Token int64
}

// IsZero reports whether f is the zero Fence (an unfenced write).
func (f Fence) IsZero() bool { return f.Token == 0 }

// Lease is a held task lock. Token is its fencing token: tokens of one (hub, task)
// strictly increase with every lease issued, even across a backend restart that
// lost the previous ones (they are seeded from the clock in milliseconds).
type Lease struct {
	Task  string
	Owner string
	Token int64
}

// Fence returns the fence that guards writes with this lease.
func (l Lease) Fence() Fence { return Fence{Task: l.Task, Token: l.Token} }

// PlanStatus is the life cycle of a stored plan.
type PlanStatus string

// Plan statuses. The engine saves a plan as PlanHeld when a safety valve trips (with
// the Reason), or as PlanApplied after applying it; an operator moves a held plan
// to PlanApproved or PlanRejected.
const (
	PlanHeld     PlanStatus = "held"
	PlanApproved PlanStatus = "approved"
	PlanRejected PlanStatus = "rejected"
	PlanApplied  PlanStatus = "applied"
)

// Plan is the last plan of one task. Data is the engine's own encoding of the plan;
// the state never looks inside it.
type Plan struct {
	ID     string // chosen by the engine, unique per plan
	Task   string
	Status PlanStatus
	Reason string    // why it was held; "" otherwise
	At     time.Time // when the engine made (or last changed) it
	Data   []byte
}

// Session is an SSO session of the bridge. Hub and Subject (the hub's persistent
// NameID) index it for single logout; both may be empty for a session that did not
// come from a hub. Data is the SP's own encoding.
type Session struct {
	ID      string
	Hub     string
	Subject string
	Data    []byte
	// Expires is set by PutSession (now + ttl) and returned by GetSession.
	Expires time.Time
}

// State is what a bridge remembers. All methods are safe for concurrent use, by
// several goroutines and (for shared backends) several processes. Every write is
// idempotent. Any method may also fail with ErrUnavailable (wrapped) when the
// backend cannot be reached. hub is the hub's server id: non-empty, at most 200
// bytes, without braces or control characters (ErrInvalid otherwise).
type State interface {
	// Apply runs one Batch of link-map work for hub and returns the links of b.Get
	// that exist (absent ids are absent from the map). Writes are refused with
	// ErrLockLost when f is not zero and a newer lease of f.Task exists; with
	// ErrConflict when a put's LocalID stays linked to another hub id of the same
	// kind (one that this batch neither deletes nor relinks); with ErrInvalid for a
	// bad batch. On any error nothing is written.
	Apply(ctx context.Context, hub string, f Fence, b Batch) (map[string]Link, error)
	// LinkByLocal is the reverse lookup: the link whose LocalID is localID.
	// ErrNotFound.
	LinkByLocal(ctx context.Context, hub string, kind Kind, localID string) (Link, error)
	// ScanLinks pages through every link of kind: cursor "" starts, and the returned
	// next is "" after the last page. count is a hint. An entry present for the whole
	// scan is returned at least once (a backend may return it twice).
	ScanLinks(ctx context.Context, hub string, kind Kind, cursor string, count int) (links []Link, next string, err error)
	// CountLinks returns how many links of kind hub has.
	CountLinks(ctx context.Context, hub string, kind Kind) (int64, error)

	// Cursor returns the value of the named sync cursor (e.g. "users.changes").
	// ErrNotFound when unset.
	Cursor(ctx context.Context, hub, name string) (string, error)
	// SetCursor stores the named cursor (value "" deletes it). ErrLockLost as Apply.
	SetCursor(ctx context.Context, hub string, f Fence, name, value string) error

	// SavePlan stores p as the plan of p.Task, replacing the previous one.
	// ErrInvalid when p.ID, p.Task or p.Status is empty. ErrLockLost as Apply.
	SavePlan(ctx context.Context, hub string, f Fence, p Plan) error
	// GetPlan returns the plan of task. ErrNotFound.
	GetPlan(ctx context.Context, hub, task string) (Plan, error)
	// Plans returns the stored plan of every task, ordered by task.
	Plans(ctx context.Context, hub string) ([]Plan, error)
	// SetPlanStatus changes the status (and At) of the plan of task, only if its ID
	// is id — an operator approves the plan they saw, never a newer one. ErrNotFound
	// when task has no plan; ErrConflict when the stored plan has another ID. Setting
	// the status it already has succeeds.
	SetPlanStatus(ctx context.Context, hub, task, id string, status PlanStatus, at time.Time) error

	// Acquire takes the lock of (hub, task) for ttl and returns a lease with a new
	// fencing token. When owner already holds it (a retried Acquire), it extends the
	// TTL and returns the same token. ErrLocked when another owner holds it.
	// ErrInvalid for an empty task or owner, or ttl ≤ 0. owner must be unique to the
	// holder (e.g. host, pid and a random suffix).
	Acquire(ctx context.Context, hub, task, owner string, ttl time.Duration) (Lease, error)
	// Renew extends the lease to ttl from now. It succeeds while l is the newest
	// lease of its task, even after the TTL lapsed if nobody acquired the lock since
	// (the lock is then re-established). ErrLockLost otherwise.
	Renew(ctx context.Context, hub string, l Lease, ttl time.Duration) error
	// Release frees the lock. Releasing a lease that was already released or lapsed
	// is not an error; ErrLockLost when a newer lease exists.
	Release(ctx context.Context, hub string, l Lease) error
	// CheckFence returns nil while f is the newest lease of f.Task, ErrLockLost once
	// a newer one was issued (or none was ever issued: a backend that lost its
	// state). The zero Fence always passes.
	CheckFence(ctx context.Context, hub string, f Fence) error
	// LockHolder returns the current lease of task and its remaining TTL.
	// ErrNotFound when the lock is free.
	LockHolder(ctx context.Context, hub, task string) (Lease, time.Duration, error)

	// Ready reports whether the link map of hub is complete: MarkReady was called and
	// nothing was lost since. It is false for a new hub, after Wipe, and after the
	// backend restarted empty; the engine then runs a full reconcile.
	Ready(ctx context.Context, hub string) (bool, error)
	// MarkReady records that a full reconcile rebuilt the map. ErrLockLost as Apply.
	MarkReady(ctx context.Context, hub string, f Fence) error
	// Wipe forgets the sync state of hub: links, hashes, cursors, plans and the ready
	// mark. Locks, fencing tokens, sessions and the replay cache stay, so a running
	// task keeps its lease and a wipe never re-opens a replay.
	Wipe(ctx context.Context, hub string) error

	// PutSession creates or replaces the session s.ID for ttl. ErrInvalid for an
	// empty id or ttl ≤ 0.
	PutSession(ctx context.Context, s Session, ttl time.Duration) error
	// GetSession returns an unexpired session. ErrNotFound.
	GetSession(ctx context.Context, id string) (Session, error)
	// DeleteSession removes a session; an absent one is not an error.
	DeleteSession(ctx context.Context, id string) error
	// DeleteSessions removes every session of (hub, subject) (single logout) and
	// returns how many existed.
	DeleteSessions(ctx context.Context, hub, subject string) (int, error)

	// Seen records a SAML message id (assertion or response ID) of hub until expiry
	// and reports whether this was its first use: true once, false for every replay
	// until expiry. A retry of the same call after a lost reply still reports true.
	// ErrInvalid for an empty id or an expiry not after now.
	Seen(ctx context.Context, hub, id string, expiry time.Time) (first bool, err error)

	// Attempt records the attempt id in the throttle counter name and returns
	// how many attempts the counter holds and whether id is one of them. A
	// counter starts with its first attempt and is forgotten window later (a
	// fixed window); once it holds limit attempts, other ids are not recorded
	// (admitted false) until then. The same id again — a call resent after a
	// lost reply — is counted once. Replicas sharing the backend share the
	// counters: the local login form counts its attempts per account and per
	// source address this way. ErrInvalid for a bad name or id, a limit outside
	// 1..MaxAttemptLimit, or window ≤ 0.
	Attempt(ctx context.Context, name, id string, limit int, window time.Duration) (n int, admitted bool, err error)
	// ForgetAttempts removes the attempts ids from the counter name, or the
	// whole counter when no id is given. Forgetting what is absent is not an
	// error.
	ForgetAttempts(ctx context.Context, name string, ids ...string) error

	// Ping checks the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the backend.
	Close() error
}

// GetLinks reads the links of ids (one round trip). Absent ids are absent from
// the map.
func GetLinks(ctx context.Context, s State, hub string, kind Kind, ids []string) (map[string]Link, error) {
	return s.Apply(ctx, hub, Fence{}, Batch{Kind: kind, Get: ids})
}

// PutLinks stores links (one round trip), fenced by f.
func PutLinks(ctx context.Context, s State, hub string, f Fence, kind Kind, links []Link) error {
	_, err := s.Apply(ctx, hub, f, Batch{Kind: kind, Put: links})
	return err
}

// DeleteLinks removes the links of hub ids (one round trip), fenced by f.
func DeleteLinks(ctx context.Context, s State, hub string, f Fence, kind Kind, ids []string) error {
	_, err := s.Apply(ctx, hub, f, Batch{Kind: kind, Delete: ids})
	return err
}

// Limits on names, enforced by every backend through the Check functions.
// MaxAttemptLimit bounds one throttle counter (Attempt), which stores the ids
// it holds.
const (
	MaxHubLen       = 200
	MaxIDLen        = 1024
	MaxAttemptLimit = 10_000
)

// CheckAttempt returns ErrInvalid unless the arguments of Attempt are valid.
func CheckAttempt(name, id string, limit int, window time.Duration) error {
	if err := CheckName("counter", name); err != nil {
		return err
	}
	if err := CheckName("attempt id", id); err != nil {
		return err
	}
	if limit < 1 || limit > MaxAttemptLimit || window <= 0 {
		return fmt.Errorf("attempt limit %d in %v: %w", limit, window, ErrInvalid)
	}
	return nil
}

// CheckHub returns ErrInvalid unless hub is a valid hub id: non-empty, at most
// MaxHubLen bytes, no braces (a Redis Cluster hash tag) and no control or space
// characters.
func CheckHub(hub string) error {
	if hub == "" || len(hub) > MaxHubLen || strings.ContainsAny(hub, "{}") || hasSpaceOrControl(hub) {
		return fmt.Errorf("hub id %q: %w", hub, ErrInvalid)
	}
	return nil
}

// CheckName returns ErrInvalid unless s is a valid task, cursor, owner or resource
// id: non-empty, at most MaxIDLen bytes, no control characters. what names it in
// the error.
func CheckName(what, s string) error {
	if s == "" || len(s) > MaxIDLen || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%s %q: %w", what, s, ErrInvalid)
	}
	return nil
}

func hasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0
}

// CheckBatch returns ErrInvalid unless b is a valid Batch (see Batch).
func CheckBatch(b Batch) error {
	if !b.Kind.Valid() {
		return fmt.Errorf("kind %q: %w", b.Kind, ErrInvalid)
	}
	del := make(map[string]bool, len(b.Delete))
	for _, id := range b.Delete {
		if err := CheckName("hub id", id); err != nil {
			return err
		}
		del[id] = true
	}
	hubs := make(map[string]bool, len(b.Put))
	locals := make(map[string]bool, len(b.Put))
	for _, l := range b.Put {
		if err := CheckName("hub id", l.HubID); err != nil {
			return err
		}
		if err := CheckName("local id", l.LocalID); err != nil {
			return err
		}
		if hubs[l.HubID] || del[l.HubID] {
			return fmt.Errorf("hub id %q twice in one batch: %w", l.HubID, ErrInvalid)
		}
		if locals[l.LocalID] {
			return fmt.Errorf("local id %q twice in one batch: %w", l.LocalID, ErrInvalid)
		}
		hubs[l.HubID], locals[l.LocalID] = true, true
	}
	for name := range b.Cursors {
		if err := CheckName("cursor", name); err != nil {
			return err
		}
	}
	for _, id := range b.Get {
		if err := CheckName("hub id", id); err != nil {
			return err
		}
	}
	return nil
}

// CheckFenceArg returns ErrInvalid for a non-zero fence without a task or with a
// negative token.
func CheckFenceArg(f Fence) error {
	if f.Token < 0 || (f.Token != 0 && f.Task == "") {
		return fmt.Errorf("fence %+v: %w", f, ErrInvalid)
	}
	return nil
}
