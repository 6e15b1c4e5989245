package bridge_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/sqlite"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/bridge/state/memory"
	"github.com/connectsso/connect/scim/client"
)

func TestMain(m *testing.M) { hubtest.Main(m) }

// env is one bridge (SQLite local directory, in-process or given state)
// syncing from one real hub process.
type env struct {
	t   testing.TB
	ctx context.Context
	hub *hubtest.Hub
	dir *sqlite.Dir
	st  bridge.State
	eng *bridge.Engine
	srv bridge.Server
	reg *prometheus.Registry
	clk *clock
}

type envOpts struct {
	hub      *hubtest.Hub
	hubOpts  hubtest.Options
	state    bridge.State // nil: memory
	scimURL  string       // "": the hub's own SCIM URL
	token    string       // "": the hub's read-only admin token
	pageSize int
	settings map[string]string
	// noHub: the source is not a hub (scimURL and token name it).
	noHub bool
	// clientTimeout bounds one source request (default 2s).
	clientTimeout time.Duration
}

// clock is a settable clock (real time plus an offset).
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	h := o.hub
	if h == nil && !o.noHub {
		h = hubtest.Start(t, o.hubOpts)
	}
	dir, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "bridge.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	clk := &clock{}
	st := o.state
	if st == nil {
		st = memory.New(memory.Config{Clock: clk.now})
	}
	e := &env{t: t, ctx: ctx, hub: h, dir: dir, st: st, reg: prometheus.NewRegistry(), clk: clk}
	if o.pageSize == 0 {
		o.pageSize = 50
	}
	if o.clientTimeout == 0 {
		o.clientTimeout = 2 * time.Second
	}
	e.eng = e.newEngine(o.pageSize, o.clientTimeout)
	url, tok := o.scimURL, o.token
	if url == "" {
		url = h.SCIM
	}
	if tok == "" {
		tok = h.Reader
	}
	e.srv, err = bridge.AddServer(ctx, dir, "hub", url, tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Tests remove users freely unless they test the valves.
	settings := map[string]string{"delete-threshold-min": "1000"}
	for k, v := range o.settings {
		settings[k] = v
	}
	e.set(settings)
	return e
}

func (e *env) newEngine(pageSize int, timeout time.Duration) *bridge.Engine {
	e.t.Helper()
	level := slog.LevelWarn
	if os.Getenv("BRIDGE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	eng, err := bridge.New(bridge.Config{
		Target: e.dir, Records: e.dir, State: e.st,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Clock:      e.clk.now,
		Registerer: e.reg,
		PageSize:   pageSize,
		LockTTL:    6 * time.Second,
		ClientConfig: func(c *client.Config) {
			c.MinBackoff, c.MaxBackoff, c.Timeout, c.MaxRetries = 5*time.Millisecond, 50*time.Millisecond, timeout, 2
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return eng
}

func (e *env) set(kv map[string]string) {
	e.t.Helper()
	if err := bridge.SaveSettings(e.ctx, e.dir, kv); err != nil {
		e.t.Fatal(err)
	}
}

// sync runs a task and fails the test on an error.
func (e *env) sync(task string, opts bridge.RunOptions) *bridge.Plan {
	e.t.Helper()
	p, err := e.eng.RunTask(e.ctx, e.srv.ID, task, opts)
	if err != nil {
		e.t.Fatalf("%s: %v", task, err)
	}
	return p
}

func (e *env) users() *bridge.Plan {
	e.t.Helper()
	return e.sync(bridge.TaskUsers, bridge.RunOptions{})
}
func (e *env) full() *bridge.Plan {
	e.t.Helper()
	return e.sync(bridge.TaskUsers, bridge.RunOptions{Full: true})
}
func (e *env) groups() *bridge.Plan {
	e.t.Helper()
	return e.sync(bridge.TaskCollections, bridge.RunOptions{})
}

// account returns the local account of a hub user (deleted included).
func (e *env) account(hubID string) local.Account {
	e.t.Helper()
	a, err := e.dir.AccountByHubID(e.ctx, e.srv.ID, hubID)
	if err != nil {
		e.t.Fatalf("account of hub user %s: %v", hubID, err)
	}
	return a
}

func (e *env) noAccount(hubID string) {
	e.t.Helper()
	if a, err := e.dir.AccountByHubID(e.ctx, e.srv.ID, hubID); !errors.Is(err, local.ErrNotFound) {
		e.t.Fatalf("hub user %s has local account %+v (err %v), want none", hubID, a, err)
	}
}

// accounts returns every account (deleted included), by username.
func (e *env) accounts() map[string]local.Account {
	e.t.Helper()
	out := map[string]local.Account{}
	q := local.AccountQuery{Deleted: local.DeletedInclude, Limit: 1000}
	for {
		as, next, err := e.dir.ListAccounts(e.ctx, q)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, a := range as {
			out[a.Username] = a
		}
		if next == "" {
			return out
		}
		q.After = next
	}
}

// connectCount counts this server's accounts that are not deleted.
func (e *env) connectCount() int64 {
	e.t.Helper()
	n, err := e.dir.CountAccounts(e.ctx, local.AccountQuery{Server: e.srv.ID})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// manual creates a manual local account.
func (e *env) manual(a local.Account) local.Account {
	e.t.Helper()
	a.Auth = local.AuthManual
	got, _, err := local.PutAccount(e.ctx, e.dir, local.Put{Account: a})
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// group returns the local group of a hub group and its members' usernames.
func (e *env) group(hubID string) (local.Group, []string) {
	e.t.Helper()
	g, err := e.dir.GroupByHubID(e.ctx, e.srv.ID, hubID)
	if err != nil {
		e.t.Fatalf("group of hub group %s: %v", hubID, err)
	}
	var names []string
	after := ""
	for {
		ids, next, err := e.dir.GroupMembers(e.ctx, g.ID, after, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, id := range ids {
			a, err := e.dir.Account(e.ctx, id)
			if err != nil {
				e.t.Fatal(err)
			}
			names = append(names, a.Username)
		}
		if next == "" {
			break
		}
		after = next
	}
	sort.Strings(names)
	return g, names
}

func (e *env) link(hubID string) (state.Link, bool) {
	e.t.Helper()
	ls, err := state.GetLinks(e.ctx, e.st.(state.State), e.srv.ID, state.KindUser, []string{hubID})
	if err != nil {
		e.t.Fatal(err)
	}
	l, ok := ls[hubID]
	return l, ok
}

func wantAction(t testing.TB, p *bridge.Plan, a bridge.Action, n int) {
	t.Helper()
	if got := p.Counts[a]; got != n {
		var b strings.Builder
		_ = p.WriteTable(&b)
		t.Fatalf("plan has %d %s, want %d:\n%s", got, a, n, b.String())
	}
}

func planText(p *bridge.Plan) string {
	var b strings.Builder
	_ = p.WriteTable(&b)
	return b.String()
}
