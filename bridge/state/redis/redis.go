// Package redis is the bridge/state backend on Redis (go-redis v9), shared by
// every replica of a bridge.
//
// Keys are "<prefix>:{<hub>}:…" (prefix "connect" by default): the braces are a
// Redis Cluster hash tag, so all of one hub's keys share a slot and its Lua
// scripts may touch several of them. Sessions ("<prefix>:session:<id>") and the
// login throttle counters ("<prefix>:attempts:<name>") are the only keys
// outside a hub's slot: they belong to no hub, and each call touches one key.
//
//	{hub}:link:user   hash  hub user id → "local id \0 content hash"
//	{hub}:rlink:user  hash  local id → hub user id   (and :group for both)
//	{hub}:cursor      hash  cursor name → value
//	{hub}:plan        hash  task → plan (JSON)
//	{hub}:ready       string, set by MarkReady
//	{hub}:lock:TASK   string owner, PX ttl
//	{hub}:fence:TASK  hash {token, owner}: the newest lease, no TTL
//	{hub}:replay:ID   string nonce, PX until the message expires
//	{hub}:subject:S   set of session ids (single logout index), PX
//	session:ID        string (JSON), PX ttl
//	attempts:NAME     set of attempt ids (Attempt), PX window from the first
//
// Every write is idempotent, because go-redis resends a command after a dropped
// connection even when Redis already ran it: links are SET, never counted;
// a retried Acquire by the holder returns its token; Seen stores a per-call nonce
// so its own retry still reports "first"; Attempt counts attempt ids in a set,
// never with INCR, so a resent attempt is counted once. A batch of link work (state.Batch) is
// one EVALSHA: one round trip per page of a full reconcile.
//
// It imports bridge/state and go-redis only.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/connectsso/connect/bridge/state"
)

// Config configures a State.
type Config struct {
	// Client is the connection (a *goredis.Client or *goredis.ClusterClient). The
	// State owns it: Close closes it.
	Client goredis.UniversalClient
	// Prefix starts every key; "" means "connect". It may not hold braces.
	Prefix string
	// Clock stamps session expiry times and turns replay expiry times into TTLs;
	// nil means time.Now. Expiry itself is Redis's.
	Clock func() time.Time
}

// State is the Redis state.
type State struct {
	c      goredis.UniversalClient
	prefix string
	clock  func() time.Time
}

var _ state.State = (*State)(nil)

// New returns a State on cfg.Client. It does not contact Redis.
func New(cfg Config) (*State, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("redis state: no client: %w", state.ErrInvalid)
	}
	p := cfg.Prefix
	if p == "" {
		p = "connect"
	}
	if strings.ContainsAny(p, "{} \t\r\n") {
		return nil, fmt.Errorf("redis state: prefix %q: %w", p, state.ErrInvalid)
	}
	c := cfg.Clock
	if c == nil {
		c = time.Now
	}
	return &State{c: cfg.Client, prefix: p, clock: c}, nil
}

// Open connects to a redis:// or rediss:// URL (redis://[user:pass@]host:port/db),
// checks Redis answers, and returns a State. cfg.Client is ignored.
func Open(ctx context.Context, rawURL string, cfg Config) (*State, error) {
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis state: %w: %w", state.ErrInvalid, err)
	}
	cfg.Client = goredis.NewClient(opts)
	s, err := New(cfg)
	if err != nil {
		cfg.Client.Close()
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Client returns the underlying client (for hooks and metrics).
func (s *State) Client() goredis.UniversalClient { return s.c }

func (s *State) key(hub string, parts ...string) string {
	return s.prefix + ":{" + hub + "}:" + strings.Join(parts, ":")
}

func (s *State) sessionKey(id string) string { return s.prefix + ":session:" + id }

func (s *State) attemptsKey(name string) string { return s.prefix + ":attempts:" + name }

// wrap maps a go-redis error to the contract: server error replies from the
// scripts to their sentinels, anything that is not a server reply (connection
// refused, EOF, timeout) to ErrUnavailable.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var re goredis.Error
	if errors.As(err, &re) && !errors.Is(err, goredis.Nil) {
		msg := err.Error()
		for prefix, sentinel := range map[string]error{
			"LOCKLOST": state.ErrLockLost, "CONFLICT": state.ErrConflict,
			"LOCKED": state.ErrLocked, "NOTFOUND": state.ErrNotFound,
		} {
			if strings.HasPrefix(msg, prefix+" ") {
				return fmt.Errorf("%s: %s: %w", op, strings.TrimPrefix(msg, prefix+" "), sentinel)
			}
		}
		return fmt.Errorf("%s: redis: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, state.ErrUnavailable, err)
}

func ms(d time.Duration) int64 { return int64(max(1, (d+time.Millisecond-1)/time.Millisecond)) }

func token(f state.Fence) string { return strconv.FormatInt(f.Token, 10) }

func (s *State) fenceKey(hub string, f state.Fence) string {
	task := f.Task
	if f.IsZero() {
		task = "-" // unused by the script; a key of the same slot keeps Cluster happy
	}
	return s.key(hub, "fence", task)
}

// Apply implements state.State.
func (s *State) Apply(ctx context.Context, hub string, f state.Fence, b state.Batch) (map[string]state.Link, error) {
	if err := state.CheckHub(hub); err != nil {
		return nil, err
	}
	if err := state.CheckFenceArg(f); err != nil {
		return nil, err
	}
	if err := state.CheckBatch(b); err != nil {
		return nil, err
	}
	fwd := s.key(hub, "link", string(b.Kind))
	out := make(map[string]state.Link, len(b.Get))
	if len(b.Put)+len(b.Delete)+len(b.Cursors) == 0 {
		if len(b.Get) == 0 {
			return out, nil
		}
		vals, err := s.c.HMGet(ctx, fwd, b.Get...).Result()
		if err != nil {
			return nil, wrap("read links", err)
		}
		decodeLinks(out, b.Get, vals)
		return out, nil
	}
	args := make([]any, 0, 5+len(b.Delete)+3*len(b.Put)+2*len(b.Cursors)+len(b.Get))
	args = append(args, token(f), len(b.Delete), len(b.Put), len(b.Cursors), len(b.Get))
	for _, id := range b.Delete {
		args = append(args, id)
	}
	for _, l := range b.Put {
		args = append(args, l.HubID, l.LocalID, l.Hash)
	}
	names := make([]string, 0, len(b.Cursors))
	for n := range b.Cursors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		args = append(args, n, b.Cursors[n])
	}
	for _, id := range b.Get {
		args = append(args, id)
	}
	keys := []string{fwd, s.key(hub, "rlink", string(b.Kind)), s.key(hub, "cursor"), s.fenceKey(hub, f)}
	res, err := applyScript.Run(ctx, s.c, keys, args...).Slice()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, wrap("apply links", err)
	}
	decodeLinks(out, b.Get, res)
	return out, nil
}

func decodeLinks(out map[string]state.Link, ids []string, vals []any) {
	for i, v := range vals {
		if str, ok := v.(string); ok && i < len(ids) {
			out[ids[i]] = decodeLink(ids[i], str)
		}
	}
}

func decodeLink(hubID, v string) state.Link {
	local, hash, _ := strings.Cut(v, "\x00")
	return state.Link{HubID: hubID, LocalID: local, Hash: hash}
}

// LinkByLocal implements state.State.
func (s *State) LinkByLocal(ctx context.Context, hub string, kind state.Kind, localID string) (state.Link, error) {
	if err := state.CheckHub(hub); err != nil {
		return state.Link{}, err
	}
	if !kind.Valid() {
		return state.Link{}, fmt.Errorf("kind %q: %w", kind, state.ErrInvalid)
	}
	if err := state.CheckName("local id", localID); err != nil {
		return state.Link{}, err
	}
	// One read in a script so the forward entry matches the reverse one.
	res, err := linkByLocalScript.Run(ctx, s.c, []string{s.key(hub, "rlink", string(kind)), s.key(hub, "link", string(kind))}, localID).Slice()
	if errors.Is(err, goredis.Nil) || err == nil && len(res) != 2 {
		return state.Link{}, fmt.Errorf("local %s %s: %w", kind, localID, state.ErrNotFound)
	}
	if err != nil {
		return state.Link{}, wrap("link by local id", err)
	}
	hubID, _ := res[0].(string)
	v, _ := res[1].(string)
	return decodeLink(hubID, v), nil
}

var linkByLocalScript = goredis.NewScript(`
local h = redis.call('HGET', KEYS[1], ARGV[1])
if not h then return {} end
local v = redis.call('HGET', KEYS[2], h)
if not v then return {} end
return {h, v}
`)

// ScanLinks implements state.State with HSCAN: the cursor is Redis's.
func (s *State) ScanLinks(ctx context.Context, hub string, kind state.Kind, cursor string, count int) ([]state.Link, string, error) {
	if err := state.CheckHub(hub); err != nil {
		return nil, "", err
	}
	if !kind.Valid() {
		return nil, "", fmt.Errorf("kind %q: %w", kind, state.ErrInvalid)
	}
	var cur uint64
	if cursor != "" {
		c, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("scan cursor %q: %w", cursor, state.ErrInvalid)
		}
		cur = c
	}
	if count <= 0 {
		count = 100
	}
	kv, next, err := s.c.HScan(ctx, s.key(hub, "link", string(kind)), cur, "", int64(count)).Result()
	if err != nil {
		return nil, "", wrap("scan links", err)
	}
	links := make([]state.Link, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		links = append(links, decodeLink(kv[i], kv[i+1]))
	}
	if next == 0 {
		return links, "", nil
	}
	return links, strconv.FormatUint(next, 10), nil
}

// CountLinks implements state.State.
func (s *State) CountLinks(ctx context.Context, hub string, kind state.Kind) (int64, error) {
	if err := state.CheckHub(hub); err != nil {
		return 0, err
	}
	if !kind.Valid() {
		return 0, fmt.Errorf("kind %q: %w", kind, state.ErrInvalid)
	}
	n, err := s.c.HLen(ctx, s.key(hub, "link", string(kind))).Result()
	return n, wrap("count links", err)
}

// Cursor implements state.State.
func (s *State) Cursor(ctx context.Context, hub, name string) (string, error) {
	if err := state.CheckHub(hub); err != nil {
		return "", err
	}
	if err := state.CheckName("cursor", name); err != nil {
		return "", err
	}
	v, err := s.c.HGet(ctx, s.key(hub, "cursor"), name).Result()
	if errors.Is(err, goredis.Nil) {
		return "", fmt.Errorf("cursor %s: %w", name, state.ErrNotFound)
	}
	return v, wrap("read cursor", err)
}

// fenced runs one write command on key when f allows it.
func (s *State) fenced(ctx context.Context, hub string, f state.Fence, op, key string, cmd ...any) error {
	args := append([]any{token(f)}, cmd...)
	err := fencedScript.Run(ctx, s.c, []string{s.fenceKey(hub, f), key}, args...).Err()
	if errors.Is(err, goredis.Nil) {
		err = nil
	}
	return wrap(op, err)
}

// SetCursor implements state.State.
func (s *State) SetCursor(ctx context.Context, hub string, f state.Fence, name, value string) error {
	if err := state.CheckHub(hub); err != nil {
		return err
	}
	if err := state.CheckFenceArg(f); err != nil {
		return err
	}
	if err := state.CheckName("cursor", name); err != nil {
		return err
	}
	if value == "" {
		return s.fenced(ctx, hub, f, "delete cursor", s.key(hub, "cursor"), "HDEL", name)
	}
	return s.fenced(ctx, hub, f, "set cursor", s.key(hub, "cursor"), "HSET", name, value)
}

// planWire is a plan as stored (JSON; the status script edits status and at).
type planWire struct {
	ID     string `json:"id"`
	Task   string `json:"task"`
	Status string `json:"status"`
	Reason string `json:"reason"`
	At     string `json:"at"`
	Data   []byte `json:"data"`
}

func checkStatus(st state.PlanStatus) error {
	switch st {
	case state.PlanHeld, state.PlanApproved, state.PlanRejected, state.PlanApplied:
		return nil
	}
	return fmt.Errorf("plan status %q: %w", st, state.ErrInvalid)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// SavePlan implements state.State.
func (s *State) SavePlan(ctx context.Context, hub string, f state.Fence, p state.Plan) error {
	if err := state.CheckHub(hub); err != nil {
		return err
	}
	if err := state.CheckFenceArg(f); err != nil {
		return err
	}
	if err := state.CheckName("plan id", p.ID); err != nil {
		return err
	}
	if err := state.CheckName("task", p.Task); err != nil {
		return err
	}
	if err := checkStatus(p.Status); err != nil {
		return err
	}
	raw, err := json.Marshal(planWire{ID: p.ID, Task: p.Task, Status: string(p.Status), Reason: p.Reason, At: formatTime(p.At), Data: p.Data})
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	return s.fenced(ctx, hub, f, "save plan", s.key(hub, "plan"), "HSET", p.Task, raw)
}

func decodePlan(raw string) (state.Plan, error) {
	var w planWire
	if err := json.Unmarshal([]byte(raw), &w); err != nil {
		return state.Plan{}, fmt.Errorf("decode plan: %w", err)
	}
	at, err := time.Parse(time.RFC3339Nano, w.At)
	if err != nil {
		return state.Plan{}, fmt.Errorf("decode plan time: %w", err)
	}
	return state.Plan{ID: w.ID, Task: w.Task, Status: state.PlanStatus(w.Status), Reason: w.Reason, At: at, Data: w.Data}, nil
}

// GetPlan implements state.State.
func (s *State) GetPlan(ctx context.Context, hub, task string) (state.Plan, error) {
	if err := state.CheckHub(hub); err != nil {
		return state.Plan{}, err
	}
	if err := state.CheckName("task", task); err != nil {
		return state.Plan{}, err
	}
	raw, err := s.c.HGet(ctx, s.key(hub, "plan"), task).Result()
	if errors.Is(err, goredis.Nil) {
		return state.Plan{}, fmt.Errorf("plan of %s: %w", task, state.ErrNotFound)
	}
	if err != nil {
		return state.Plan{}, wrap("read plan", err)
	}
	return decodePlan(raw)
}

// Plans implements state.State.
func (s *State) Plans(ctx context.Context, hub string) ([]state.Plan, error) {
	if err := state.CheckHub(hub); err != nil {
		return nil, err
	}
	all, err := s.c.HGetAll(ctx, s.key(hub, "plan")).Result()
	if err != nil {
		return nil, wrap("read plans", err)
	}
	out := make([]state.Plan, 0, len(all))
	for _, raw := range all {
		p, err := decodePlan(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Task < out[j].Task })
	return out, nil
}

// SetPlanStatus implements state.State.
func (s *State) SetPlanStatus(ctx context.Context, hub, task, id string, status state.PlanStatus, at time.Time) error {
	if err := state.CheckHub(hub); err != nil {
		return err
	}
	if err := state.CheckName("task", task); err != nil {
		return err
	}
	if err := state.CheckName("plan id", id); err != nil {
		return err
	}
	if err := checkStatus(status); err != nil {
		return err
	}
	err := planStatusScript.Run(ctx, s.c, []string{s.key(hub, "plan")}, task, id, string(status), formatTime(at)).Err()
	return wrap("set plan status of "+task, err)
}

func checkLease(hub string, l state.Lease, ttl time.Duration, needTTL bool) error {
	if err := state.CheckHub(hub); err != nil {
		return err
	}
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
func (s *State) Acquire(ctx context.Context, hub, task, owner string, ttl time.Duration) (state.Lease, error) {
	if err := checkLease(hub, state.Lease{Task: task, Owner: owner}, ttl, true); err != nil {
		return state.Lease{}, err
	}
	tok, err := acquireScript.Run(ctx, s.c, []string{s.key(hub, "lock", task), s.key(hub, "fence", task)}, owner, ms(ttl)).Text()
	if err != nil {
		return state.Lease{}, wrap("acquire "+task, err)
	}
	n, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return state.Lease{}, fmt.Errorf("acquire %s: bad token %q", task, tok)
	}
	return state.Lease{Task: task, Owner: owner, Token: n}, nil
}

// Renew implements state.State.
func (s *State) Renew(ctx context.Context, hub string, l state.Lease, ttl time.Duration) error {
	if err := checkLease(hub, l, ttl, true); err != nil {
		return err
	}
	err := renewScript.Run(ctx, s.c, []string{s.key(hub, "lock", l.Task), s.key(hub, "fence", l.Task)}, l.Owner, strconv.FormatInt(l.Token, 10), ms(ttl)).Err()
	return wrap("renew "+l.Task, err)
}

// Release implements state.State.
func (s *State) Release(ctx context.Context, hub string, l state.Lease) error {
	if err := checkLease(hub, l, 0, false); err != nil {
		return err
	}
	err := releaseScript.Run(ctx, s.c, []string{s.key(hub, "lock", l.Task), s.key(hub, "fence", l.Task)}, l.Owner, strconv.FormatInt(l.Token, 10)).Err()
	return wrap("release "+l.Task, err)
}

// CheckFence implements state.State.
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
	tok, err := s.c.HGet(ctx, s.key(hub, "fence", f.Task), "token").Result()
	if errors.Is(err, goredis.Nil) || err == nil && tok != token(f) {
		return fmt.Errorf("fence %s/%d: %w", f.Task, f.Token, state.ErrLockLost)
	}
	return wrap("check fence", err)
}

// LockHolder implements state.State.
func (s *State) LockHolder(ctx context.Context, hub, task string) (state.Lease, time.Duration, error) {
	if err := state.CheckHub(hub); err != nil {
		return state.Lease{}, 0, err
	}
	if err := state.CheckName("task", task); err != nil {
		return state.Lease{}, 0, err
	}
	res, err := holderScript.Run(ctx, s.c, []string{s.key(hub, "lock", task), s.key(hub, "fence", task)}).Slice()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return state.Lease{}, 0, wrap("lock holder", err)
	}
	if len(res) != 3 {
		return state.Lease{}, 0, fmt.Errorf("lock %s: %w", task, state.ErrNotFound)
	}
	owner, _ := res[0].(string)
	pttl, _ := res[1].(int64)
	tokStr, _ := res[2].(string)
	tok, _ := strconv.ParseInt(tokStr, 10, 64)
	if pttl <= 0 {
		return state.Lease{}, 0, fmt.Errorf("lock %s: %w", task, state.ErrNotFound)
	}
	return state.Lease{Task: task, Owner: owner, Token: tok}, time.Duration(pttl) * time.Millisecond, nil
}

// Ready implements state.State.
func (s *State) Ready(ctx context.Context, hub string) (bool, error) {
	if err := state.CheckHub(hub); err != nil {
		return false, err
	}
	n, err := s.c.Exists(ctx, s.key(hub, "ready")).Result()
	return n == 1, wrap("ready", err)
}

// MarkReady implements state.State.
func (s *State) MarkReady(ctx context.Context, hub string, f state.Fence) error {
	if err := state.CheckHub(hub); err != nil {
		return err
	}
	if err := state.CheckFenceArg(f); err != nil {
		return err
	}
	return s.fenced(ctx, hub, f, "mark ready", s.key(hub, "ready"), "SET", "1")
}

// Wipe implements state.State: one DEL of the hub's sync keys.
func (s *State) Wipe(ctx context.Context, hub string) error {
	if err := state.CheckHub(hub); err != nil {
		return err
	}
	keys := []string{s.key(hub, "cursor"), s.key(hub, "plan"), s.key(hub, "ready")}
	for _, k := range []state.Kind{state.KindUser, state.KindGroup} {
		keys = append(keys, s.key(hub, "link", string(k)), s.key(hub, "rlink", string(k)))
	}
	return wrap("wipe", s.c.Del(ctx, keys...).Err())
}

// sessionWire is a session as stored.
type sessionWire struct {
	Hub     string `json:"hub,omitempty"`
	Subject string `json:"subject,omitempty"`
	Data    []byte `json:"data"`
	Expires string `json:"expires"`
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

// PutSession implements state.State: the session key and its single-logout index
// in one pipeline (they live in different slots).
func (s *State) PutSession(ctx context.Context, ss state.Session, ttl time.Duration) error {
	if err := checkSession(ss); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("ttl %v: %w", ttl, state.ErrInvalid)
	}
	raw, err := json.Marshal(sessionWire{Hub: ss.Hub, Subject: ss.Subject, Data: ss.Data, Expires: formatTime(s.clock().Add(ttl))})
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, s.sessionKey(ss.ID), raw, time.Duration(ms(ttl))*time.Millisecond)
		if ss.Hub != "" && ss.Subject != "" {
			idx := s.key(ss.Hub, "subject", ss.Subject)
			p.SAdd(ctx, idx, ss.ID)
			// The index lives as long as its longest session.
			p.Do(ctx, "PEXPIRE", idx, ms(ttl), "NX")
			p.Do(ctx, "PEXPIRE", idx, ms(ttl), "GT")
		}
		return nil
	})
	return wrap("put session", err)
}

func decodeSession(id, raw string) (state.Session, error) {
	var w sessionWire
	if err := json.Unmarshal([]byte(raw), &w); err != nil {
		return state.Session{}, fmt.Errorf("decode session: %w", err)
	}
	exp, _ := time.Parse(time.RFC3339Nano, w.Expires)
	return state.Session{ID: id, Hub: w.Hub, Subject: w.Subject, Data: w.Data, Expires: exp}, nil
}

// GetSession implements state.State.
func (s *State) GetSession(ctx context.Context, id string) (state.Session, error) {
	if err := state.CheckName("session id", id); err != nil {
		return state.Session{}, err
	}
	raw, err := s.c.Get(ctx, s.sessionKey(id)).Result()
	if errors.Is(err, goredis.Nil) {
		return state.Session{}, fmt.Errorf("session: %w", state.ErrNotFound)
	}
	if err != nil {
		return state.Session{}, wrap("get session", err)
	}
	return decodeSession(id, raw)
}

// DeleteSession implements state.State.
func (s *State) DeleteSession(ctx context.Context, id string) error {
	ss, err := s.GetSession(ctx, id)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, s.sessionKey(id))
		if ss.Hub != "" && ss.Subject != "" {
			p.SRem(ctx, s.key(ss.Hub, "subject", ss.Subject), id)
		}
		return nil
	})
	return wrap("delete session", err)
}

// DeleteSessions implements state.State. It deletes only sessions that still
// belong to (hub, subject): an id reused for someone else stays.
func (s *State) DeleteSessions(ctx context.Context, hub, subject string) (int, error) {
	if err := state.CheckHub(hub); err != nil {
		return 0, err
	}
	if err := state.CheckName("subject", subject); err != nil {
		return 0, err
	}
	idx := s.key(hub, "subject", subject)
	ids, err := s.c.SMembers(ctx, idx).Result()
	if err != nil {
		return 0, wrap("single logout", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	gets := make([]*goredis.StringCmd, len(ids))
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = p.Get(ctx, s.sessionKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return 0, wrap("single logout", err)
	}
	dels := make([]*goredis.IntCmd, 0, len(ids))
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, g := range gets {
			raw, err := g.Result()
			if err != nil {
				continue
			}
			if ss, err := decodeSession(ids[i], raw); err == nil && ss.Hub == hub && ss.Subject == subject {
				dels = append(dels, p.Del(ctx, s.sessionKey(ids[i])))
			}
		}
		members := make([]any, len(ids))
		for i, id := range ids {
			members[i] = id
		}
		p.SRem(ctx, idx, members...)
		return nil
	})
	if err != nil {
		return 0, wrap("single logout", err)
	}
	n := 0
	for _, d := range dels {
		n += int(d.Val())
	}
	return n, nil
}

// Seen implements state.State with SET NX GET and a nonce: the first call stores
// its nonce; a resent copy of that call finds its own nonce and still reports
// true; any other call finds another nonce and reports false.
func (s *State) Seen(ctx context.Context, hub, id string, expiry time.Time) (bool, error) {
	if err := state.CheckHub(hub); err != nil {
		return false, err
	}
	if err := state.CheckName("message id", id); err != nil {
		return false, err
	}
	ttl := expiry.Sub(s.clock())
	if ttl <= 0 {
		return false, fmt.Errorf("message %s expired at %v: %w", id, expiry, state.ErrInvalid)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, fmt.Errorf("nonce: %w", err)
	}
	nonce := hex.EncodeToString(b[:])
	old, err := s.c.Do(ctx, "SET", s.key(hub, "replay", id), nonce, "PX", ms(ttl), "NX", "GET").Text()
	if errors.Is(err, goredis.Nil) {
		return true, nil
	}
	if err != nil {
		return false, wrap("replay cache", err)
	}
	return old == nonce, nil
}

// Attempt implements state.State with one script on a set of attempt ids.
func (s *State) Attempt(ctx context.Context, name, id string, limit int, window time.Duration) (int, bool, error) {
	if err := state.CheckAttempt(name, id, limit, window); err != nil {
		return 0, false, err
	}
	res, err := attemptScript.Run(ctx, s.c, []string{s.attemptsKey(name)}, id, limit, ms(window)).Int64Slice()
	if err != nil {
		return 0, false, wrap("attempt", err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("attempt: unexpected reply %v", res)
	}
	return int(res[0]), res[1] == 1, nil
}

// ForgetAttempts implements state.State: SREM of the ids, or DEL of the
// counter (both idempotent).
func (s *State) ForgetAttempts(ctx context.Context, name string, ids ...string) error {
	if err := state.CheckName("counter", name); err != nil {
		return err
	}
	if len(ids) == 0 {
		return wrap("forget attempts", s.c.Del(ctx, s.attemptsKey(name)).Err())
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	return wrap("forget attempts", s.c.SRem(ctx, s.attemptsKey(name), members...).Err())
}

// Ping implements state.State.
func (s *State) Ping(ctx context.Context) error {
	return wrap("ping", s.c.Ping(ctx).Err())
}

// Close implements state.State: it closes the client.
func (s *State) Close() error { return s.c.Close() }
