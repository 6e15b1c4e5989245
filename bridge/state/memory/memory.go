// Package memory is the in-process bridge/state backend: the embedded default for
// a single replica (no --redis). It keeps everything in maps behind one mutex,
// with the same semantics as the Redis backend, TTLs included (they follow the
// injected clock). Its state dies with the process, which the engine sees as
// Ready = false on the next start.
//
// It imports bridge/state only.
package memory

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/connectsso/connect/bridge/state"
)

// Config configures a State.
type Config struct {
	// Clock is the time TTLs follow; nil means time.Now.
	Clock func() time.Time
}

// State is the in-process state. The zero value is not usable; call New.
type State struct {
	mu        sync.Mutex
	clock     func() time.Time
	hubs      map[string]*hub
	sessions  map[string]session
	attempts  map[string]*attempts
	lastSweep time.Time
	closed    bool
}

var _ state.State = (*State)(nil)

type hub struct {
	links   map[state.Kind]*linkMap
	cursors map[string]string
	plans   map[string]state.Plan
	ready   bool
	locks   map[string]lock  // task → holder (expiring)
	fences  map[string]fence // task → newest lease issued (never expires)
	replay  map[string]time.Time
	subject map[string]map[string]bool // subject → session ids
}

type linkMap struct {
	fwd    map[string]state.Link // hub id → link
	rev    map[string]string     // local id → hub id
	sorted []string              // hub ids in order, for ScanLinks; nil when stale
}

type lock struct {
	owner   string
	expires time.Time
}

type fence struct {
	token int64
	owner string
}

// attempts is one throttle counter: the attempt ids it holds until expires.
type attempts struct {
	ids     map[string]bool
	expires time.Time
}

type session struct {
	s       state.Session
	expires time.Time
}

// New returns an empty state.
func New(cfg Config) *State {
	c := cfg.Clock
	if c == nil {
		c = time.Now
	}
	return &State{clock: c, hubs: map[string]*hub{}, sessions: map[string]session{}, attempts: map[string]*attempts{}}
}

// sweepEvery bounds how long expired sessions and replay ids stay in memory when
// nobody reads them.
const sweepEvery = time.Minute

// begin locks s, checks hub and returns its record (created when create is set;
// nil when absent otherwise). Callers must call s.mu.Unlock.
func (s *State) begin(hubID string, create bool) (*hub, time.Time, error) {
	if err := state.CheckHub(hubID); err != nil {
		return nil, time.Time{}, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, time.Time{}, fmt.Errorf("memory state closed: %w", state.ErrUnavailable)
	}
	now := s.clock()
	s.sweep(now)
	return s.hub(hubID, create), now, nil
}

// hub returns the record of hubID, creating it when create is set (under s.mu).
func (s *State) hub(hubID string, create bool) *hub {
	h := s.hubs[hubID]
	if h == nil && create {
		h = &hub{
			links: map[state.Kind]*linkMap{
				state.KindUser:  {fwd: map[string]state.Link{}, rev: map[string]string{}},
				state.KindGroup: {fwd: map[string]state.Link{}, rev: map[string]string{}},
			},
			cursors: map[string]string{},
			plans:   map[string]state.Plan{},
			locks:   map[string]lock{},
			fences:  map[string]fence{},
			replay:  map[string]time.Time{},
			subject: map[string]map[string]bool{},
		}
		s.hubs[hubID] = h
	}
	return h
}

// sweep drops expired sessions and replay ids, at most once per sweepEvery.
func (s *State) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	for id, ss := range s.sessions {
		if !now.Before(ss.expires) {
			s.dropSession(id)
		}
	}
	for name, a := range s.attempts {
		if !now.Before(a.expires) {
			delete(s.attempts, name)
		}
	}
	for _, h := range s.hubs {
		for id, exp := range h.replay {
			if !now.Before(exp) {
				delete(h.replay, id)
			}
		}
		for task, l := range h.locks {
			if !now.Before(l.expires) {
				delete(h.locks, task)
			}
		}
	}
}

// checkFence reports whether a write fenced by f may happen (under s.mu).
func checkFence(h *hub, f state.Fence) error {
	if f.IsZero() {
		return nil
	}
	if h == nil || h.fences[f.Task].token != f.Token {
		return fmt.Errorf("fence %s/%d: %w", f.Task, f.Token, state.ErrLockLost)
	}
	return nil
}

// Apply implements state.State.
func (s *State) Apply(_ context.Context, hubID string, f state.Fence, b state.Batch) (map[string]state.Link, error) {
	if err := state.CheckFenceArg(f); err != nil {
		return nil, err
	}
	if err := state.CheckBatch(b); err != nil {
		return nil, err
	}
	writes := len(b.Put)+len(b.Delete)+len(b.Cursors) > 0
	h, _, err := s.begin(hubID, writes)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if writes {
		if err := checkFence(h, f); err != nil {
			return nil, err
		}
		m := h.links[b.Kind]
		// Check every put before writing anything.
		gone := make(map[string]bool, len(b.Delete)+len(b.Put))
		for _, id := range b.Delete {
			gone[id] = true
		}
		for _, l := range b.Put {
			gone[l.HubID] = true
		}
		for _, l := range b.Put {
			if r, ok := m.rev[l.LocalID]; ok && r != l.HubID && !gone[r] {
				return nil, fmt.Errorf("local %s id %s is linked to hub id %s: %w", b.Kind, l.LocalID, r, state.ErrConflict)
			}
		}
		for _, id := range b.Delete {
			m.unlink(id, "")
			if _, ok := m.fwd[id]; ok {
				delete(m.fwd, id)
				m.sorted = nil
			}
		}
		for _, l := range b.Put {
			m.unlink(l.HubID, l.LocalID)
			if _, ok := m.fwd[l.HubID]; !ok {
				m.sorted = nil
			}
			m.fwd[l.HubID] = l
			m.rev[l.LocalID] = l.HubID
		}
		for name, v := range b.Cursors {
			setCursor(h, name, v)
		}
	}
	out := make(map[string]state.Link, len(b.Get))
	if h != nil {
		m := h.links[b.Kind]
		for _, id := range b.Get {
			if l, ok := m.fwd[id]; ok {
				out[id] = l
			}
		}
	}
	return out, nil
}

// unlink drops the reverse entry of hub id's current link unless it points at
// keepLocal or another hub id already took that local id.
func (m *linkMap) unlink(hubID, keepLocal string) {
	old, ok := m.fwd[hubID]
	if !ok || old.LocalID == keepLocal {
		return
	}
	if m.rev[old.LocalID] == hubID {
		delete(m.rev, old.LocalID)
	}
}

func setCursor(h *hub, name, v string) {
	if v == "" {
		delete(h.cursors, name)
		return
	}
	h.cursors[name] = v
}

// LinkByLocal implements state.State.
func (s *State) LinkByLocal(_ context.Context, hubID string, kind state.Kind, localID string) (state.Link, error) {
	if !kind.Valid() {
		return state.Link{}, fmt.Errorf("kind %q: %w", kind, state.ErrInvalid)
	}
	if err := state.CheckName("local id", localID); err != nil {
		return state.Link{}, err
	}
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return state.Link{}, err
	}
	defer s.mu.Unlock()
	if h != nil {
		m := h.links[kind]
		if id, ok := m.rev[localID]; ok {
			return m.fwd[id], nil
		}
	}
	return state.Link{}, fmt.Errorf("local %s %s: %w", kind, localID, state.ErrNotFound)
}

// ScanLinks implements state.State. The cursor is the last hub id returned; links
// come in hub id order.
func (s *State) ScanLinks(_ context.Context, hubID string, kind state.Kind, cursor string, count int) ([]state.Link, string, error) {
	if !kind.Valid() {
		return nil, "", fmt.Errorf("kind %q: %w", kind, state.ErrInvalid)
	}
	if count <= 0 {
		count = 100
	}
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return nil, "", err
	}
	defer s.mu.Unlock()
	if h == nil {
		return nil, "", nil
	}
	m := h.links[kind]
	if m.sorted == nil {
		m.sorted = make([]string, 0, len(m.fwd))
		for id := range m.fwd {
			m.sorted = append(m.sorted, id)
		}
		sort.Strings(m.sorted)
	}
	i := 0
	if cursor != "" {
		i = sort.SearchStrings(m.sorted, cursor)
		if i < len(m.sorted) && m.sorted[i] == cursor {
			i++
		}
	}
	end := min(i+count, len(m.sorted))
	links := make([]state.Link, 0, end-i)
	for _, id := range m.sorted[i:end] {
		links = append(links, m.fwd[id])
	}
	if end >= len(m.sorted) {
		return links, "", nil
	}
	return links, m.sorted[end-1], nil
}

// CountLinks implements state.State.
func (s *State) CountLinks(_ context.Context, hubID string, kind state.Kind) (int64, error) {
	if !kind.Valid() {
		return 0, fmt.Errorf("kind %q: %w", kind, state.ErrInvalid)
	}
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if h == nil {
		return 0, nil
	}
	return int64(len(h.links[kind].fwd)), nil
}

// Cursor implements state.State.
func (s *State) Cursor(_ context.Context, hubID, name string) (string, error) {
	if err := state.CheckName("cursor", name); err != nil {
		return "", err
	}
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return "", err
	}
	defer s.mu.Unlock()
	if h != nil {
		if v, ok := h.cursors[name]; ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("cursor %s: %w", name, state.ErrNotFound)
}

// SetCursor implements state.State.
func (s *State) SetCursor(_ context.Context, hubID string, f state.Fence, name, value string) error {
	if err := state.CheckFenceArg(f); err != nil {
		return err
	}
	if err := state.CheckName("cursor", name); err != nil {
		return err
	}
	h, _, err := s.begin(hubID, true)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := checkFence(h, f); err != nil {
		return err
	}
	setCursor(h, name, value)
	return nil
}

func checkPlan(p state.Plan) error {
	if err := state.CheckName("plan id", p.ID); err != nil {
		return err
	}
	if err := state.CheckName("task", p.Task); err != nil {
		return err
	}
	return checkStatus(p.Status)
}

func checkStatus(st state.PlanStatus) error {
	switch st {
	case state.PlanHeld, state.PlanApproved, state.PlanRejected, state.PlanApplied:
		return nil
	}
	return fmt.Errorf("plan status %q: %w", st, state.ErrInvalid)
}

func clonePlan(p state.Plan) state.Plan {
	if p.Data != nil {
		p.Data = append([]byte(nil), p.Data...)
	}
	return p
}

// SavePlan implements state.State.
func (s *State) SavePlan(_ context.Context, hubID string, f state.Fence, p state.Plan) error {
	if err := state.CheckFenceArg(f); err != nil {
		return err
	}
	if err := checkPlan(p); err != nil {
		return err
	}
	h, _, err := s.begin(hubID, true)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := checkFence(h, f); err != nil {
		return err
	}
	h.plans[p.Task] = clonePlan(p)
	return nil
}

// GetPlan implements state.State.
func (s *State) GetPlan(_ context.Context, hubID, task string) (state.Plan, error) {
	if err := state.CheckName("task", task); err != nil {
		return state.Plan{}, err
	}
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return state.Plan{}, err
	}
	defer s.mu.Unlock()
	if h != nil {
		if p, ok := h.plans[task]; ok {
			return clonePlan(p), nil
		}
	}
	return state.Plan{}, fmt.Errorf("plan of %s: %w", task, state.ErrNotFound)
}

// Plans implements state.State.
func (s *State) Plans(_ context.Context, hubID string) ([]state.Plan, error) {
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []state.Plan
	if h != nil {
		for _, p := range h.plans {
			out = append(out, clonePlan(p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Task < out[j].Task })
	return out, nil
}

// SetPlanStatus implements state.State.
func (s *State) SetPlanStatus(_ context.Context, hubID, task, id string, status state.PlanStatus, at time.Time) error {
	if err := state.CheckName("task", task); err != nil {
		return err
	}
	if err := state.CheckName("plan id", id); err != nil {
		return err
	}
	if err := checkStatus(status); err != nil {
		return err
	}
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("plan of %s: %w", task, state.ErrNotFound)
	}
	p, ok := h.plans[task]
	if !ok {
		return fmt.Errorf("plan of %s: %w", task, state.ErrNotFound)
	}
	if p.ID != id {
		return fmt.Errorf("plan of %s is %s, not %s: %w", task, p.ID, id, state.ErrConflict)
	}
	p.Status, p.At = status, at
	h.plans[task] = p
	return nil
}

func checkLease(l state.Lease, ttl time.Duration, needTTL bool) error {
	if err := state.CheckName("task", l.Task); err != nil {
		return err
	}
	if err := state.CheckName("owner", l.Owner); err != nil {
		return err
	}
	if needTTL && ttl <= 0 {
		return fmt.Errorf("ttl %v: %w", ttl, state.ErrInvalid)
	}
	return nil
}

// Acquire implements state.State.
func (s *State) Acquire(_ context.Context, hubID, task, owner string, ttl time.Duration) (state.Lease, error) {
	if err := checkLease(state.Lease{Task: task, Owner: owner}, ttl, true); err != nil {
		return state.Lease{}, err
	}
	h, now, err := s.begin(hubID, true)
	if err != nil {
		return state.Lease{}, err
	}
	defer s.mu.Unlock()
	if cur, ok := h.locks[task]; ok && now.Before(cur.expires) {
		if cur.owner != owner {
			return state.Lease{}, fmt.Errorf("task %s: %w", task, state.ErrLocked)
		}
		h.locks[task] = lock{owner: owner, expires: now.Add(ttl)}
		return state.Lease{Task: task, Owner: owner, Token: h.fences[task].token}, nil
	}
	tok := max(h.fences[task].token+1, now.UnixMilli())
	h.fences[task] = fence{token: tok, owner: owner}
	h.locks[task] = lock{owner: owner, expires: now.Add(ttl)}
	return state.Lease{Task: task, Owner: owner, Token: tok}, nil
}

// current reports whether l is the newest lease of its task (under s.mu).
func current(h *hub, l state.Lease) bool {
	if h == nil {
		return false
	}
	f, ok := h.fences[l.Task]
	return ok && f.token == l.Token && f.owner == l.Owner
}

// Renew implements state.State.
func (s *State) Renew(_ context.Context, hubID string, l state.Lease, ttl time.Duration) error {
	if err := checkLease(l, ttl, true); err != nil {
		return err
	}
	h, now, err := s.begin(hubID, false)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if !current(h, l) {
		return fmt.Errorf("renew %s/%d: %w", l.Task, l.Token, state.ErrLockLost)
	}
	h.locks[l.Task] = lock{owner: l.Owner, expires: now.Add(ttl)}
	return nil
}

// Release implements state.State.
func (s *State) Release(_ context.Context, hubID string, l state.Lease) error {
	if err := checkLease(l, 0, false); err != nil {
		return err
	}
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if h == nil {
		return nil // the state was lost: nothing is held
	}
	if _, ok := h.fences[l.Task]; !ok {
		return nil
	}
	if !current(h, l) {
		return fmt.Errorf("release %s/%d: %w", l.Task, l.Token, state.ErrLockLost)
	}
	delete(h.locks, l.Task)
	return nil
}

// CheckFence implements state.State.
func (s *State) CheckFence(_ context.Context, hubID string, f state.Fence) error {
	if err := state.CheckFenceArg(f); err != nil {
		return err
	}
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	return checkFence(h, f)
}

// LockHolder implements state.State.
func (s *State) LockHolder(_ context.Context, hubID, task string) (state.Lease, time.Duration, error) {
	if err := state.CheckName("task", task); err != nil {
		return state.Lease{}, 0, err
	}
	h, now, err := s.begin(hubID, false)
	if err != nil {
		return state.Lease{}, 0, err
	}
	defer s.mu.Unlock()
	if h != nil {
		if l, ok := h.locks[task]; ok && now.Before(l.expires) {
			return state.Lease{Task: task, Owner: l.owner, Token: h.fences[task].token}, l.expires.Sub(now), nil
		}
	}
	return state.Lease{}, 0, fmt.Errorf("lock %s: %w", task, state.ErrNotFound)
}

// Ready implements state.State.
func (s *State) Ready(_ context.Context, hubID string) (bool, error) {
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	return h != nil && h.ready, nil
}

// MarkReady implements state.State.
func (s *State) MarkReady(_ context.Context, hubID string, f state.Fence) error {
	if err := state.CheckFenceArg(f); err != nil {
		return err
	}
	h, _, err := s.begin(hubID, true)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := checkFence(h, f); err != nil {
		return err
	}
	h.ready = true
	return nil
}

// Wipe implements state.State.
func (s *State) Wipe(_ context.Context, hubID string) error {
	h, _, err := s.begin(hubID, false)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if h == nil {
		return nil
	}
	for k := range h.links {
		h.links[k] = &linkMap{fwd: map[string]state.Link{}, rev: map[string]string{}}
	}
	h.cursors = map[string]string{}
	h.plans = map[string]state.Plan{}
	h.ready = false
	return nil
}

func checkSession(ss state.Session) error {
	if err := state.CheckName("session id", ss.ID); err != nil {
		return err
	}
	if ss.Hub != "" {
		if err := state.CheckHub(ss.Hub); err != nil {
			return err
		}
	}
	if ss.Subject != "" {
		return state.CheckName("subject", ss.Subject)
	}
	return nil
}

// PutSession implements state.State.
func (s *State) PutSession(_ context.Context, ss state.Session, ttl time.Duration) error {
	if err := checkSession(ss); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("ttl %v: %w", ttl, state.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory state closed: %w", state.ErrUnavailable)
	}
	now := s.clock()
	s.sweep(now)
	s.dropSession(ss.ID)
	ss.Data = append([]byte(nil), ss.Data...)
	ss.Expires = now.Add(ttl)
	s.sessions[ss.ID] = session{s: ss, expires: ss.Expires}
	if ss.Hub != "" && ss.Subject != "" {
		h := s.hub(ss.Hub, true)
		if h.subject[ss.Subject] == nil {
			h.subject[ss.Subject] = map[string]bool{}
		}
		h.subject[ss.Subject][ss.ID] = true
	}
	return nil
}

// dropSession removes a session and its index entry (under s.mu).
func (s *State) dropSession(id string) bool {
	ss, ok := s.sessions[id]
	if !ok {
		return false
	}
	delete(s.sessions, id)
	if h := s.hubs[ss.s.Hub]; h != nil {
		if ids := h.subject[ss.s.Subject]; ids != nil {
			delete(ids, id)
			if len(ids) == 0 {
				delete(h.subject, ss.s.Subject)
			}
		}
	}
	return true
}

// GetSession implements state.State.
func (s *State) GetSession(_ context.Context, id string) (state.Session, error) {
	if err := state.CheckName("session id", id); err != nil {
		return state.Session{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return state.Session{}, fmt.Errorf("memory state closed: %w", state.ErrUnavailable)
	}
	ss, ok := s.sessions[id]
	if !ok || !s.clock().Before(ss.expires) {
		return state.Session{}, fmt.Errorf("session: %w", state.ErrNotFound)
	}
	out := ss.s
	out.Data = append([]byte(nil), out.Data...)
	return out, nil
}

// DeleteSession implements state.State.
func (s *State) DeleteSession(_ context.Context, id string) error {
	if err := state.CheckName("session id", id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory state closed: %w", state.ErrUnavailable)
	}
	s.dropSession(id)
	return nil
}

// DeleteSessions implements state.State.
func (s *State) DeleteSessions(_ context.Context, hubID, subject string) (int, error) {
	if err := state.CheckHub(hubID); err != nil {
		return 0, err
	}
	if err := state.CheckName("subject", subject); err != nil {
		return 0, err
	}
	h, now, err := s.begin(hubID, false)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if h == nil {
		return 0, nil
	}
	n := 0
	for id := range h.subject[subject] {
		if ss, ok := s.sessions[id]; ok && now.Before(ss.expires) {
			n++
		}
		s.dropSession(id)
	}
	return n, nil
}

// Seen implements state.State.
func (s *State) Seen(_ context.Context, hubID, id string, expiry time.Time) (bool, error) {
	if err := state.CheckHub(hubID); err != nil {
		return false, err
	}
	if err := state.CheckName("message id", id); err != nil {
		return false, err
	}
	h, now, err := s.begin(hubID, true)
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if !expiry.After(now) {
		return false, fmt.Errorf("message %s expired at %v: %w", id, expiry, state.ErrInvalid)
	}
	if exp, ok := h.replay[id]; ok && now.Before(exp) {
		return false, nil
	}
	h.replay[id] = expiry
	return true, nil
}

// lock locks s for a call that names no hub. Callers must call s.mu.Unlock.
func (s *State) lock() (time.Time, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return time.Time{}, fmt.Errorf("memory state closed: %w", state.ErrUnavailable)
	}
	now := s.clock()
	s.sweep(now)
	return now, nil
}

// Attempt implements state.State.
func (s *State) Attempt(_ context.Context, name, id string, limit int, window time.Duration) (int, bool, error) {
	if err := state.CheckAttempt(name, id, limit, window); err != nil {
		return 0, false, err
	}
	now, err := s.lock()
	if err != nil {
		return 0, false, err
	}
	defer s.mu.Unlock()
	a := s.attempts[name]
	if a == nil || !now.Before(a.expires) {
		a = &attempts{ids: map[string]bool{}, expires: now.Add(window)}
		s.attempts[name] = a
	}
	if a.ids[id] {
		return len(a.ids), true, nil
	}
	if len(a.ids) >= limit {
		return len(a.ids), false, nil
	}
	a.ids[id] = true
	return len(a.ids), true, nil
}

// ForgetAttempts implements state.State.
func (s *State) ForgetAttempts(_ context.Context, name string, ids ...string) error {
	if err := state.CheckName("counter", name); err != nil {
		return err
	}
	if _, err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	a := s.attempts[name]
	if len(ids) == 0 || a == nil {
		delete(s.attempts, name)
		return nil
	}
	for _, id := range ids {
		delete(a.ids, id)
	}
	if len(a.ids) == 0 {
		delete(s.attempts, name)
	}
	return nil
}

// Ping implements state.State.
func (s *State) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory state closed: %w", state.ErrUnavailable)
	}
	return nil
}

// Close implements state.State. Later calls fail with ErrUnavailable.
func (s *State) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
