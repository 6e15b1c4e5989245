package bridge_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local"
)

// hookTarget runs a hook once, just before the first PutGroup or SetMembers
// it sees (whichever is named), to force an interleaving of the two tasks.
type hookTarget struct {
	bridge.Target
	at   string // "put-group", "set-members" or "second-page"
	puts int
	once sync.Once
	hook func()
}

func (h *hookTarget) PutGroup(ctx context.Context, actor local.Actor, g local.Group) (local.Group, local.Op, error) {
	if h.at == "put-group" {
		h.once.Do(h.hook)
	}
	return h.Target.PutGroup(ctx, actor, g)
}

func (h *hookTarget) PutAccounts(ctx context.Context, puts []local.Put) ([]local.Result, error) {
	if h.at == "second-page" {
		h.puts++
		if h.puts == 2 {
			h.once.Do(h.hook)
		}
	}
	return h.Target.PutAccounts(ctx, puts)
}

func (h *hookTarget) SetMembers(ctx context.Context, actor local.Actor, groupID string, ids []string) (int, int, error) {
	if h.at == "set-members" {
		h.once.Do(h.hook)
	}
	return h.Target.SetMembers(ctx, actor, groupID, ids)
}

// hookRace gives e a second engine (on the same directory and state) that
// runs task in ht's hook, and returns an engine writing through ht.
func hookRace(t *testing.T, e *env, ht *hookTarget, task string, pageSize int) *bridge.Engine {
	t.Helper()
	e.reg = prometheus.NewRegistry()
	other := e.newEngine(50, 2*time.Second)
	ht.hook = func() {
		if _, err := other.RunTask(e.ctx, e.srv.ID, task, bridge.RunOptions{Full: true}); err != nil {
			t.Errorf("%s task: %v", task, err)
		}
	}
	eng, err := bridge.New(bridge.Config{
		Target: ht, Records: e.dir, State: e.st,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Clock:      e.clk.now,
		Registerer: prometheus.NewRegistry(),
		PageSize:   pageSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// TestUsersAndCollectionsRace: the users task makes a member's account while
// the collections task syncs the member's group, in the two orders that lost
// the membership before (the CI failure of TestSSO): the collections task read
// the members before the account existed, and the users task either looked for
// the group before it existed or joined the account before SetMembers replaced
// the member list. Either way the account ends up in its group, with no
// further run.
func TestUsersAndCollectionsRace(t *testing.T) {
	for _, at := range []string{"put-group", "set-members"} {
		t.Run(at, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			g := e.hub.CreateGroup(t, "Race "+at, "audience")
			if at == "set-members" {
				// The group exists locally with bob before alice arrives and
				// bob leaves, so the pass replaces the member list.
				bob := e.hub.CreateUsers(t, "racebob", 1)[0]
				e.hub.AddMembers(t, g.ID, bob.ID)
				e.users()
				e.groups()
				e.hub.RemoveMember(t, g.ID, bob.ID)
			}
			alice := e.hub.CreateUsers(t, "race", 1)[0]
			e.hub.AddMembers(t, g.ID, alice.ID)

			ht := &hookTarget{Target: e.dir, at: at}
			eng := hookRace(t, e, ht, bridge.TaskUsers, 50)
			if _, err := eng.RunTask(e.ctx, e.srv.ID, bridge.TaskCollections, bridge.RunOptions{Full: true}); err != nil {
				t.Fatal(err)
			}
			acct := e.account(alice.ID)
			if _, members := e.group(g.ID); len(members) != 1 || !slices.Contains(members, acct.Username) {
				t.Fatalf("members of the group after both tasks: %v, want [%s]", members, acct.Username)
			}
			// The stored hash covers the member: the next pass has nothing to do.
			if p := e.sync(bridge.TaskCollections, bridge.RunOptions{Full: true}); p.Counts[bridge.ActMembers] != 0 {
				t.Fatalf("second pass changed members:\n%s", planText(p))
			}
		})
	}
}

// TestUsersRunLooksAgainForNewGroups: a users run that found no local group
// for a member on its first page, while the collections task makes that
// group (and reads its members' accounts) before the run's second page makes
// another member's account: the run looks again at its end and joins it.
func TestUsersRunLooksAgainForNewGroups(t *testing.T) {
	e := newEnv(t, envOpts{})
	us := e.hub.CreateUsers(t, "late", 2)
	g := e.hub.CreateGroup(t, "Late group", "audience", us[0].ID, us[1].ID)

	ht := &hookTarget{Target: e.dir, at: "second-page"}
	users := hookRace(t, e, ht, bridge.TaskCollections, 1) // one user a page: the group is made between the two
	if _, err := users.RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: true}); err != nil {
		t.Fatal(err)
	}
	if ht.puts < 2 {
		t.Fatalf("the users run wrote %d pages, want 2", ht.puts)
	}
	_, members := e.group(g.ID)
	want := []string{e.account(us[0].ID).Username, e.account(us[1].ID).Username}
	slices.Sort(want)
	if !slices.Equal(members, want) {
		t.Fatalf("members after both tasks: %v, want %v", members, want)
	}
}
