package bridge_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/client"
)

// listingTarget counts the listings of one server's accounts.
type listingTarget struct {
	bridge.Target
	server string
	lists  *atomic.Int64
}

func (l listingTarget) ListAccounts(ctx context.Context, q local.AccountQuery) ([]local.Account, string, error) {
	if q.Server == l.server {
		l.lists.Add(1)
	}
	return l.Target.ListAccounts(ctx, q)
}

// hookSource is the hub's SCIM source, with a hook run before the listing's
// first page and users left out of the listing (as if the listing had passed
// their place before they were made).
type hookSource struct {
	*bridge.SCIMSource
	once sync.Once
	hook func()
	hide map[string]bool
}

func (s *hookSource) ListUsers(ctx context.Context, fn func([]scim.User) error) error {
	return s.SCIMSource.ListUsers(ctx, func(us []scim.User) error {
		s.once.Do(s.hook)
		kept := us[:0]
		for _, u := range us {
			if !s.hide[u.ID] {
				kept = append(kept, u)
			}
		}
		return fn(kept)
	})
}

// freshEngine is an engine on e's directory and state that counts the listings
// of the server's accounts and reads the hub through src (nil: hook-less).
func freshEngine(t *testing.T, e *env, src *hookSource, lists *atomic.Int64) *bridge.Engine {
	t.Helper()
	eng, err := bridge.New(bridge.Config{
		Target: listingTarget{Target: e.dir, server: e.srv.ID, lists: lists}, Records: e.dir, State: e.st,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Clock:      e.clk.now,
		Registerer: prometheus.NewRegistry(),
		PageSize:   10,
		NewSource: func(s bridge.Server) (bridge.Source, error) {
			c, err := client.New(client.Config{BaseURL: s.URL, Token: s.Token, PageSize: 10})
			if err != nil {
				return nil, err
			}
			if src == nil {
				return bridge.NewSCIMSource(c), nil
			}
			src.SCIMSource = bridge.NewSCIMSource(c)
			return src, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// TestFreshSyncSkipsOwnAccounts: the first full sync of a server does not read
// back the accounts it just wrote to look for ones the listing missed — the
// server had none, and accounts mapped from manual ones are listed users — but
// it still finds an account another writer made meanwhile (a login's SyncUser,
// which runs outside the task lock) for a user the listing did not include and
// the hub no longer serves, and applies the removal action to it.
func TestFreshSyncSkipsOwnAccounts(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})

	t.Run("mapped and created", func(t *testing.T) {
		e := newEnv(t, envOpts{hub: h, settings: map[string]string{
			"migrate-local-accounts": "true", "account-mapping": "username"}})
		us := h.CreateUsers(t, "fresh", 25)
		mapped := e.manual(local.Account{Username: us[3].UserName, Email: "site@example.org"})
		other := e.manual(local.Account{Username: "site-only", Email: "site-only@example.org"})
		var lists atomic.Int64
		p, err := freshEngine(t, e, nil, &lists).RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantAction(t, p, bridge.ActCreate, 24)
		wantAction(t, p, bridge.ActLink, 1)
		if n := lists.Load(); n != 0 {
			t.Fatalf("the first sync listed the server's accounts %d times, want 0", n)
		}
		if a := e.account(us[3].ID); a.ID != mapped.ID || a.Auth != local.AuthConnect {
			t.Fatalf("mapped account %+v, want %s linked", a, mapped.ID)
		}
		if a, err := e.dir.Account(e.ctx, other.ID); err != nil || a.Auth != local.AuthManual || a.Suspended || a.IsDeleted() {
			t.Fatalf("unmatched manual account %+v (%v), want it untouched", a, err)
		}
		if n := e.connectCount(); n != 25 {
			t.Fatalf("%d accounts of the server, want 25", n)
		}
		// A later full run is not fresh: it lists the server's accounts.
		lists.Store(0)
		if _, err := freshEngine(t, e, nil, &lists).RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: true}); err != nil {
			t.Fatal(err)
		}
		if lists.Load() == 0 {
			t.Fatal("a full run after the first did not list the server's accounts")
		}
	})

	t.Run("login meanwhile", func(t *testing.T) {
		e := newEnv(t, envOpts{hub: h})
		us := h.CreateUsers(t, "meanwhile", 25)
		gone := h.CreateUser(t, hubtest.User("meanwhile-gone"))
		src := &hookSource{hide: map[string]bool{gone.ID: true}}
		src.hook = func() {
			// A login makes the user's account while the hub serves them;
			// then the hub stops serving them before the listing gets there.
			if _, err := e.eng.SyncUser(e.ctx, e.srv.ID, gone.ID); err != nil {
				t.Errorf("login sync: %v", err)
			}
			h.DeleteUser(t, gone.ID)
		}
		var lists atomic.Int64
		p, err := freshEngine(t, e, src, &lists).RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// (The hub also serves the other subtest's users.)
		wantAction(t, p, bridge.ActCreate, p.Listed)
		if lists.Load() == 0 {
			t.Fatal("an account made by a login during the first sync was not looked for")
		}
		var item *bridge.Item
		for i := range p.Items {
			if p.Items[i].HubID == gone.ID {
				item = &p.Items[i]
			}
		}
		if item == nil || item.Action != bridge.ActSuspend || !item.Done || !strings.Contains(item.Rule, "not in the source's listing") {
			t.Fatalf("no applied suspension of the account the login made:\n%s", planText(p))
		}
		if a := e.account(gone.ID); !a.Suspended || a.SuspendedBy != local.SuspendedByConnect {
			t.Fatalf("account of the user gone from the hub: %+v, want suspended by Connect", a)
		}
		for _, u := range us {
			if a := e.account(u.ID); a.Suspended || a.IsDeleted() {
				t.Fatalf("listed user's account %+v changed", a)
			}
		}
	})
}
