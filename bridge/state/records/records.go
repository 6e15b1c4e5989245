package records

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
)

// Store is the records database: task locks and plans (the SQL local
// directories have them) and a readiness check.
type Store interface {
	local.TaskRecords
	Ping(ctx context.Context) error
}

// Config configures New.
type Config struct {
	// Clock is the clock LockHolder measures the remaining TTL with; time.Now
	// when nil. It should be the clock the Store follows.
	Clock func() time.Time
}

// State is a state.State whose locks and plans are in a Store and the rest in
// an inner state.
type State struct {
	inner state.State
	db    Store
	now   func() time.Time

	mu sync.Mutex
	// tokens is the last token this state acquired per hub and task: a
	// retried Acquire that returns it again does not forget the cache again.
	tokens map[[2]string]int64
	// unwiped are hubs whose cache must be forgotten but a Wipe failed: the
	// next Acquire wipes them whoever held the lock last (after the failed
	// attempt released it, that is this process).
	unwiped map[string]bool
}

// newLease records l's token and reports whether it is new here.
func (s *State) newLease(hub string, l local.TaskLease) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{hub, l.Name}
	if s.tokens[k] == l.Token {
		return false
	}
	s.tokens[k] = l.Token
	return true
}

var _ state.State = (*State)(nil)

// New returns the state over inner (which it closes on Close) and db (which it
// does not: db belongs to the local directory).
func New(inner state.State, db Store, cfg Config) *State {
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	return &State{inner: inner, db: db, now: now, tokens: map[[2]string]int64{}, unwiped: map[string]bool{}}
}

// conv turns a records error into the state contract's: conflict is what
// local.ErrConflict means for this call.
func conv(err, conflict error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, local.ErrConflict) && conflict != nil:
		return fmt.Errorf("%w: %w", conflict, err)
	case errors.Is(err, local.ErrNotFound):
		return fmt.Errorf("%w: %w", state.ErrNotFound, err)
	case errors.Is(err, local.ErrInvalid):
		return fmt.Errorf("%w: %w", state.ErrInvalid, err)
	case errors.Is(err, local.ErrUnavailable):
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	return err
}

func checkNames(hub string, names ...string) error {
	if err := state.CheckHub(hub); err != nil {
		return err
	}
	for i := 0; i+1 < len(names); i += 2 {
		if err := state.CheckName(names[i], names[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// Apply implements state.State: the fence is checked in the database, the
// links are written to the inner state.
func (s *State) Apply(ctx context.Context, hub string, f state.Fence, b state.Batch) (map[string]state.Link, error) {
	if len(b.Put) > 0 || len(b.Delete) > 0 || len(b.Cursors) > 0 {
		if err := state.CheckBatch(b); err != nil {
			return nil, err
		}
		if err := s.CheckFence(ctx, hub, f); err != nil {
			return nil, err
		}
	}
	return s.inner.Apply(ctx, hub, state.Fence{}, b)
}

// LinkByLocal implements state.State.
func (s *State) LinkByLocal(ctx context.Context, hub string, kind state.Kind, localID string) (state.Link, error) {
	return s.inner.LinkByLocal(ctx, hub, kind, localID)
}

// ScanLinks implements state.State.
func (s *State) ScanLinks(ctx context.Context, hub string, kind state.Kind, cursor string, count int) ([]state.Link, string, error) {
	return s.inner.ScanLinks(ctx, hub, kind, cursor, count)
}

// CountLinks implements state.State.
func (s *State) CountLinks(ctx context.Context, hub string, kind state.Kind) (int64, error) {
	return s.inner.CountLinks(ctx, hub, kind)
}

// Cursor implements state.State.
func (s *State) Cursor(ctx context.Context, hub, name string) (string, error) {
	return s.inner.Cursor(ctx, hub, name)
}

// SetCursor implements state.State.
func (s *State) SetCursor(ctx context.Context, hub string, f state.Fence, name, value string) error {
	if err := checkNames(hub, "cursor", name); err != nil {
		return err
	}
	if err := s.CheckFence(ctx, hub, f); err != nil {
		return err
	}
	return s.inner.SetCursor(ctx, hub, state.Fence{}, name, value)
}

func checkStatus(st state.PlanStatus) error {
	switch st {
	case state.PlanHeld, state.PlanApproved, state.PlanRejected, state.PlanApplied:
		return nil
	}
	return fmt.Errorf("plan status %q: %w", st, state.ErrInvalid)
}

// SavePlan implements state.State: the fence is checked by the statement that
// writes the plan.
func (s *State) SavePlan(ctx context.Context, hub string, f state.Fence, p state.Plan) error {
	if err := checkNames(hub, "plan id", p.ID, "task", p.Task); err != nil {
		return err
	}
	if err := checkStatus(p.Status); err != nil {
		return err
	}
	if err := state.CheckFenceArg(f); err != nil {
		return err
	}
	tp := local.TaskPlan{Scope: hub, Task: p.Task, ID: p.ID, Status: string(p.Status), Reason: p.Reason, At: p.At, Data: p.Data}
	return conv(s.db.SaveTaskPlan(ctx, tp, f.Task, f.Token), state.ErrLockLost)
}

func fromTaskPlan(tp local.TaskPlan) state.Plan {
	return state.Plan{ID: tp.ID, Task: tp.Task, Status: state.PlanStatus(tp.Status), Reason: tp.Reason, At: tp.At, Data: tp.Data}
}

// GetPlan implements state.State.
func (s *State) GetPlan(ctx context.Context, hub, task string) (state.Plan, error) {
	if err := checkNames(hub, "task", task); err != nil {
		return state.Plan{}, err
	}
	tp, err := s.db.TaskPlan(ctx, hub, task)
	if err != nil {
		return state.Plan{}, conv(err, nil)
	}
	return fromTaskPlan(tp), nil
}

// Plans implements state.State.
func (s *State) Plans(ctx context.Context, hub string) ([]state.Plan, error) {
	if err := state.CheckHub(hub); err != nil {
		return nil, err
	}
	tps, err := s.db.TaskPlans(ctx, hub)
	if err != nil {
		return nil, conv(err, nil)
	}
	var out []state.Plan
	for _, tp := range tps {
		out = append(out, fromTaskPlan(tp))
	}
	return out, nil
}

// SetPlanStatus implements state.State.
func (s *State) SetPlanStatus(ctx context.Context, hub, task, id string, status state.PlanStatus, at time.Time) error {
	if err := checkNames(hub, "task", task, "plan id", id); err != nil {
		return err
	}
	if err := checkStatus(status); err != nil {
		return err
	}
	return conv(s.db.SetTaskPlanStatus(ctx, hub, task, id, string(status), at), state.ErrConflict)
}

func toLease(l local.TaskLease) state.Lease {
	return state.Lease{Task: l.Name, Owner: l.Owner, Token: l.Token}
}

func fromLease(hub string, l state.Lease) local.TaskLease {
	return local.TaskLease{Scope: hub, Name: l.Task, Owner: l.Owner, Token: l.Token}
}

// Acquire implements state.State.
func (s *State) Acquire(ctx context.Context, hub, task, owner string, ttl time.Duration) (state.Lease, error) {
	if err := checkNames(hub, "task", task, "owner", owner); err != nil {
		return state.Lease{}, err
	}
	if ttl <= 0 {
		return state.Lease{}, fmt.Errorf("ttl %v: %w", ttl, state.ErrInvalid)
	}
	l, err := s.db.AcquireLock(ctx, hub, task, owner, ttl)
	if err != nil {
		return state.Lease{}, conv(err, state.ErrLocked)
	}
	foreign := l.Previous != "" && l.Previous != owner && s.newLease(hub, l)
	s.mu.Lock()
	pending := s.unwiped[hub]
	s.mu.Unlock()
	if foreign || pending {
		// Another process ran this task since this one last did: it may have
		// changed the local directory behind the links and hashes cached here
		// (an account it deleted would be skipped as unchanged when its hub
		// user came back). Forget them: the next run reconciles in full.
		err := s.inner.Wipe(ctx, hub)
		s.mu.Lock()
		s.unwiped[hub] = err != nil
		s.mu.Unlock()
		if err != nil {
			_ = s.db.ReleaseLock(context.WithoutCancel(ctx), l)
			return state.Lease{}, err
		}
	}
	return toLease(l), nil
}

// Renew implements state.State.
func (s *State) Renew(ctx context.Context, hub string, l state.Lease, ttl time.Duration) error {
	if err := checkNames(hub, "task", l.Task, "owner", l.Owner); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("ttl %v: %w", ttl, state.ErrInvalid)
	}
	return conv(s.db.RenewLock(ctx, fromLease(hub, l), ttl), state.ErrLockLost)
}

// Release implements state.State.
func (s *State) Release(ctx context.Context, hub string, l state.Lease) error {
	if err := checkNames(hub, "task", l.Task, "owner", l.Owner); err != nil {
		return err
	}
	return conv(s.db.ReleaseLock(ctx, fromLease(hub, l)), state.ErrLockLost)
}

// CheckFence implements state.State: a non-zero fence is checked against the
// newest lease in the database. Apply, SetCursor and MarkReady check theirs
// with it before they write to the inner state.
func (s *State) CheckFence(ctx context.Context, hub string, f state.Fence) error {
	if err := state.CheckHub(hub); err != nil {
		return err
	}
	if err := state.CheckFenceArg(f); err != nil {
		return err
	}
	if f.IsZero() {
		return nil
	}
	tok, err := s.db.LockToken(ctx, hub, f.Task)
	if errors.Is(err, local.ErrNotFound) || err == nil && tok != f.Token {
		return fmt.Errorf("fence %s/%d: %w", f.Task, f.Token, state.ErrLockLost)
	}
	return conv(err, nil)
}

// LockHolder implements state.State.
func (s *State) LockHolder(ctx context.Context, hub, task string) (state.Lease, time.Duration, error) {
	if err := checkNames(hub, "task", task); err != nil {
		return state.Lease{}, 0, err
	}
	l, err := s.db.LockHolder(ctx, hub, task)
	if err != nil {
		return state.Lease{}, 0, conv(err, nil)
	}
	return toLease(l), max(l.Expires.Sub(s.now()), time.Nanosecond), nil
}

// Ready implements state.State.
func (s *State) Ready(ctx context.Context, hub string) (bool, error) { return s.inner.Ready(ctx, hub) }

// MarkReady implements state.State.
func (s *State) MarkReady(ctx context.Context, hub string, f state.Fence) error {
	if err := s.CheckFence(ctx, hub, f); err != nil {
		return err
	}
	return s.inner.MarkReady(ctx, hub, state.Fence{})
}

// Wipe implements state.State: the inner state's links and cursors, and the
// plans in the database. Locks stay.
func (s *State) Wipe(ctx context.Context, hub string) error {
	if err := s.inner.Wipe(ctx, hub); err != nil {
		return err
	}
	return conv(s.db.DeleteTaskPlans(ctx, hub), nil)
}

// PutSession implements state.State.
func (s *State) PutSession(ctx context.Context, ss state.Session, ttl time.Duration) error {
	return s.inner.PutSession(ctx, ss, ttl)
}

// GetSession implements state.State.
func (s *State) GetSession(ctx context.Context, id string) (state.Session, error) {
	return s.inner.GetSession(ctx, id)
}

// DeleteSession implements state.State.
func (s *State) DeleteSession(ctx context.Context, id string) error {
	return s.inner.DeleteSession(ctx, id)
}

// DeleteSessions implements state.State.
func (s *State) DeleteSessions(ctx context.Context, hub, subject string) (int, error) {
	return s.inner.DeleteSessions(ctx, hub, subject)
}

// Seen implements state.State.
func (s *State) Seen(ctx context.Context, hub, id string, expiry time.Time) (bool, error) {
	return s.inner.Seen(ctx, hub, id, expiry)
}

// Attempt implements state.State.
func (s *State) Attempt(ctx context.Context, name, id string, limit int, window time.Duration) (int, bool, error) {
	return s.inner.Attempt(ctx, name, id, limit, window)
}

// ForgetAttempts implements state.State.
func (s *State) ForgetAttempts(ctx context.Context, name string, ids ...string) error {
	return s.inner.ForgetAttempts(ctx, name, ids...)
}

// Ping implements state.State: the inner state and the database.
func (s *State) Ping(ctx context.Context) error {
	if err := s.inner.Ping(ctx); err != nil {
		return err
	}
	return conv(s.db.Ping(ctx), nil)
}

// Close closes the inner state (the database belongs to the local directory).
func (s *State) Close() error { return s.inner.Close() }
