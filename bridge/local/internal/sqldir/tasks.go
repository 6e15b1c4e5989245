package sqldir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/connectsso/connect/bridge/local"
)

var _ local.TaskRecords = (*Dir)(nil)

func checkTaskName(what, s string) error {
	if s == "" || len(s) > local.MaxFieldLen {
		return fmt.Errorf("%s %q: %w", what, s, local.ErrInvalid)
	}
	return nil
}

func checkTaskLease(l local.TaskLease) error {
	return errors.Join(checkTaskName("scope", l.Scope), checkTaskName("lock", l.Name), checkTaskName("owner", l.Owner))
}

// acquireLock is the whole acquisition in one statement: a free lock (no row,
// released or lapsed) is taken with a new token — the clock in milliseconds or
// one more than the last, whichever is larger — and a lock the same owner
// holds is extended with its token (and its previous owner). A lock another
// owner holds is not touched and nothing is returned. The parameter after the
// values is now, repeated for each CASE and the WHERE.
const acquireLock = `INSERT INTO local_task_locks (scope, name, owner, prev_owner, token, expires) VALUES (?, ?, ?, '', ?, ?)
	ON CONFLICT (scope, name) DO UPDATE SET
		token = CASE
			WHEN local_task_locks.owner = excluded.owner AND local_task_locks.expires > ? THEN local_task_locks.token
			WHEN local_task_locks.token >= excluded.token THEN local_task_locks.token + 1
			ELSE excluded.token END,
		prev_owner = CASE
			WHEN local_task_locks.owner = excluded.owner AND local_task_locks.expires > ? THEN local_task_locks.prev_owner
			ELSE local_task_locks.owner END,
		owner = excluded.owner,
		expires = excluded.expires
	WHERE local_task_locks.expires <= ? OR local_task_locks.owner = excluded.owner
	RETURNING token, prev_owner`

// AcquireLock takes the lock of (scope, name).
func (s *Dir) AcquireLock(ctx context.Context, scope, name, owner string, ttl time.Duration) (local.TaskLease, error) {
	l := local.TaskLease{Scope: scope, Name: name, Owner: owner}
	if err := checkTaskLease(l); err != nil {
		return l, err
	}
	if ttl <= 0 {
		return l, fmt.Errorf("lock ttl %v: %w", ttl, local.ErrInvalid)
	}
	now := s.now()
	l.Expires = now.Add(ttl).UTC()
	err := s.w.QueryRowContext(ctx, s.d.rebind(acquireLock),
		scope, name, owner, now.UnixMilli(), l.Expires.UnixMicro(), now.UnixMicro(), now.UnixMicro(), now.UnixMicro()).Scan(&l.Token, &l.Previous)
	if errors.Is(err, sql.ErrNoRows) {
		return local.TaskLease{}, fmt.Errorf("lock %s: held by another owner: %w", name, local.ErrConflict)
	}
	if err != nil {
		return local.TaskLease{}, s.dbErr("acquire lock", err)
	}
	return l, nil
}

// RenewLock extends the newest lease of its lock.
func (s *Dir) RenewLock(ctx context.Context, l local.TaskLease, ttl time.Duration) error {
	if err := checkTaskLease(l); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("lock ttl %v: %w", ttl, local.ErrInvalid)
	}
	// A released lease does not renew: a renewal that was in flight when
	// the run released its lock must not bring the lock back. (A lease that
	// ran out with no one else taking it still renews: the state contract.)
	if n, err := s.execCount(ctx, "renew lock", `UPDATE local_task_locks SET expires = ? WHERE scope = ? AND name = ? AND owner = ? AND token = ? AND expires > 0`,
		s.now().Add(ttl).UnixMicro(), l.Scope, l.Name, l.Owner, l.Token); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("renew lock %s/%d: not the newest lease, or released: %w", l.Name, l.Token, local.ErrConflict)
	}
	return nil
}

// ReleaseLock frees the lock while l is its newest lease.
func (s *Dir) ReleaseLock(ctx context.Context, l local.TaskLease) error {
	if err := checkTaskLease(l); err != nil {
		return err
	}
	if n, err := s.execCount(ctx, "release lock", `UPDATE local_task_locks SET expires = 0 WHERE scope = ? AND name = ? AND owner = ? AND token = ?`,
		l.Scope, l.Name, l.Owner, l.Token); err != nil {
		return err
	} else if n == 1 {
		return nil
	}
	// Nothing matched: a lock never taken is free; otherwise a newer lease exists.
	if _, err := s.LockToken(ctx, l.Scope, l.Name); errors.Is(err, local.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	return fmt.Errorf("release lock %s/%d: not the newest lease: %w", l.Name, l.Token, local.ErrConflict)
}

// LockToken returns the newest token of a lock.
func (s *Dir) LockToken(ctx context.Context, scope, name string) (int64, error) {
	var tok int64
	err := s.r.QueryRowContext(ctx, s.d.rebind(`SELECT token FROM local_task_locks WHERE scope = ? AND name = ?`), scope, name).Scan(&tok)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("lock %s: %w", name, local.ErrNotFound)
	}
	if err != nil {
		return 0, s.dbErr("lock token", err)
	}
	return tok, nil
}

// LockHolder returns the unexpired lease of a lock.
func (s *Dir) LockHolder(ctx context.Context, scope, name string) (local.TaskLease, error) {
	l := local.TaskLease{Scope: scope, Name: name}
	var exp int64
	err := s.r.QueryRowContext(ctx, s.d.rebind(`SELECT owner, token, expires FROM local_task_locks WHERE scope = ? AND name = ? AND expires > ?`),
		scope, name, s.now().UnixMicro()).Scan(&l.Owner, &l.Token, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return local.TaskLease{}, fmt.Errorf("lock %s: free: %w", name, local.ErrNotFound)
	}
	if err != nil {
		return local.TaskLease{}, s.dbErr("lock holder", err)
	}
	l.Expires = time.UnixMicro(exp).UTC()
	return l, nil
}

const (
	planCols = `scope, task, id, status, reason, at, data`
	// planSet replaces every column of a stored plan on conflict.
	planSet = ` ON CONFLICT (scope, task) DO UPDATE SET id = excluded.id, status = excluded.status,
		reason = excluded.reason, at = excluded.at, data = excluded.data`
)

// SaveTaskPlan stores a task's plan, fenced by the token of lock when not 0.
func (s *Dir) SaveTaskPlan(ctx context.Context, p local.TaskPlan, lock string, token int64) error {
	if err := errors.Join(checkTaskName("scope", p.Scope), checkTaskName("task", p.Task), checkTaskName("plan id", p.ID), checkTaskName("plan status", p.Status)); err != nil {
		return err
	}
	if len(p.Data) > maxRecordValue || len(p.Reason) > maxRecordValue {
		return fmt.Errorf("plan %s: over 1 MiB: %w", p.ID, local.ErrInvalid)
	}
	data := p.Data
	if data == nil {
		data = []byte{}
	}
	args := []any{p.Scope, p.Task, p.ID, p.Status, p.Reason, micro(p.At), data}
	if token == 0 {
		_, err := s.w.ExecContext(ctx, s.d.rebind(`INSERT INTO local_task_plans (`+planCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`+planSet), args...)
		if err != nil {
			return s.dbErr("save plan", err)
		}
		return nil
	}
	if err := checkTaskName("lock", lock); err != nil {
		return err
	}
	// The fence is checked by the insert itself: no row to write unless the
	// token is still the lock's newest. Casts type the selected parameters
	// (PostgreSQL cannot infer them from a SELECT list).
	q := `INSERT INTO local_task_plans (` + planCols + `)
		SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS %BLOB%)
		WHERE EXISTS (SELECT 1 FROM local_task_locks WHERE scope = ? AND name = ? AND token = ?)` + planSet
	q = strings.ReplaceAll(q, "%BLOB%", s.d.Types["%BLOB%"])
	if n, err := s.execCount(ctx, "save plan", q, append(args, p.Scope, lock, token)...); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("save plan %s: lock %s/%d is not the newest lease: %w", p.ID, lock, token, local.ErrConflict)
	}
	return nil
}

func scanTaskPlan(sc scanner) (local.TaskPlan, error) {
	var p local.TaskPlan
	var at sql.NullInt64
	if err := sc.Scan(&p.Scope, &p.Task, &p.ID, &p.Status, &p.Reason, &at, &p.Data); err != nil {
		return p, err
	}
	p.At = fromMicro(at)
	if p.Data == nil {
		p.Data = []byte{}
	}
	return p, nil
}

// TaskPlan returns the plan of (scope, task).
func (s *Dir) TaskPlan(ctx context.Context, scope, task string) (local.TaskPlan, error) {
	p, err := scanTaskPlan(s.r.QueryRowContext(ctx, s.d.rebind(`SELECT `+planCols+` FROM local_task_plans WHERE scope = ? AND task = ?`), scope, task))
	if errors.Is(err, sql.ErrNoRows) {
		return local.TaskPlan{}, fmt.Errorf("plan of %s: %w", task, local.ErrNotFound)
	}
	if err != nil {
		return local.TaskPlan{}, s.dbErr("get plan", err)
	}
	return p, nil
}

// TaskPlans returns the plans of scope, ordered by task.
func (s *Dir) TaskPlans(ctx context.Context, scope string) ([]local.TaskPlan, error) {
	out, err := queryAll(ctx, s, "list plans", scanTaskPlan, `SELECT `+planCols+` FROM local_task_plans WHERE scope = ?`, scope)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b local.TaskPlan) int { return strings.Compare(a.Task, b.Task) })
	return out, nil
}

// SetTaskPlanStatus changes the status of the plan id of (scope, task).
func (s *Dir) SetTaskPlanStatus(ctx context.Context, scope, task, id, status string, at time.Time) error {
	if err := errors.Join(checkTaskName("scope", scope), checkTaskName("task", task), checkTaskName("plan id", id), checkTaskName("plan status", status)); err != nil {
		return err
	}
	if n, err := s.execCount(ctx, "set plan status", `UPDATE local_task_plans SET status = ?, at = ? WHERE scope = ? AND task = ? AND id = ?`,
		status, micro(at), scope, task, id); err != nil {
		return err
	} else if n == 1 {
		return nil
	}
	cur, err := s.TaskPlan(ctx, scope, task)
	if err != nil {
		return err
	}
	return fmt.Errorf("plan of %s is %s, not %s: %w", task, cur.ID, id, local.ErrConflict)
}

// DeleteTaskPlans removes every plan of scope.
func (s *Dir) DeleteTaskPlans(ctx context.Context, scope string) error {
	if _, err := s.w.ExecContext(ctx, s.d.rebind(`DELETE FROM local_task_plans WHERE scope = ?`), scope); err != nil {
		return s.dbErr("delete plans", err)
	}
	return nil
}
