package storetest

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

type change struct{ Type, ID, Op, Reason string }

// changesSince returns the journal after seq, sorted within the batch for a
// stable comparison, and the new head.
func changesSince(t *testing.T, s store.Store, after int64) ([]change, int64) {
	t.Helper()
	es, err := s.Journal(ctxFor(t), after, 1000)
	if err != nil {
		t.Fatalf("Journal(%d): %v", after, err)
	}
	var out []change
	last := after
	for _, e := range es {
		if e.Seq <= last {
			t.Fatalf("journal not in increasing order: %d after %d", e.Seq, last)
		}
		last = e.Seq
		if e.At.IsZero() {
			t.Errorf("journal entry %d has no time", e.Seq)
		}
		out = append(out, change{e.ResourceType, e.ID, e.Op, e.Reason})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.ID < b.ID
	})
	return out, last
}

func testJournal(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	head, err := s.JournalHead(ctx)
	if err != nil || head != 0 {
		t.Fatalf("JournalHead of an empty store = %d, %v", head, err)
	}
	step := func(name string, want []change) {
		t.Helper()
		got, h := changesSince(t, s, head)
		sort.Slice(want, func(i, j int) bool {
			if want[i].Type != want[j].Type {
				return want[i].Type < want[j].Type
			}
			return want[i].ID < want[j].ID
		})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: journal (-want +got):\n%s", name, diff)
		}
		if jh, _ := s.JournalHead(ctx); jh != h {
			t.Errorf("%s: JournalHead %d, last entry %d", name, jh, h)
		}
		head = h
	}
	up, rm := scim.ChangeUpsert, scim.ChangeRemove
	a := createUser(t, s, scim.User{UserName: "a"})
	step("create user", []change{{"User", a.ID, up, scim.ReasonCreated}})
	b := createUser(t, s, scim.User{UserName: "b"})
	step("create user b", []change{{"User", b.ID, up, scim.ReasonCreated}})
	a.Meta, a.Title = nil, "x"
	if _, err := s.ReplaceUser(ctx, a, 0); err != nil {
		t.Fatal(err)
	}
	step("replace user", []change{{"User", a.ID, up, scim.ReasonUpdated}})
	if _, err := s.UpdateUser(ctx, a.ID, 0, func(u *scim.User) error { u.Active = scim.BoolPtr(false); return nil }); err != nil {
		t.Fatal(err)
	}
	step("suspend user", []change{{"User", a.ID, up, scim.ReasonSuspended}})
	g := createGroup(t, s, scim.Group{DisplayName: "G", Members: []scim.Member{{Value: a.ID}}})
	step("create group", []change{{"Group", g.ID, up, scim.ReasonCreated}, {"User", a.ID, up, scim.ReasonMembers}})
	if _, err := s.UpdateGroup(ctx, g.ID, 0, func(_ *scim.Group, ops *store.MemberOps) error {
		ops.Add = []scim.Member{{Value: b.ID}, {Value: a.ID}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	step("add member", []change{{"Group", g.ID, up, scim.ReasonMembers}, {"User", b.ID, up, scim.ReasonMembers}})
	if _, err := s.UpdateGroup(ctx, g.ID, 0, func(gr *scim.Group, _ *store.MemberOps) error { gr.DisplayName = "G2"; return nil }); err != nil {
		t.Fatal(err)
	}
	step("rename group", []change{{"Group", g.ID, up, scim.ReasonUpdated}})
	g.Meta, g.Members = nil, []scim.Member{{Value: b.ID}}
	g.DisplayName = "G3"
	if _, err := s.ReplaceGroup(ctx, g, 0); err != nil {
		t.Fatal(err)
	}
	step("replace group", []change{{"Group", g.ID, up, scim.ReasonUpdated}, {"User", a.ID, up, scim.ReasonMembers}})
	if err := s.DeleteUser(ctx, b.ID, 0); err != nil {
		t.Fatal(err)
	}
	step("delete member user", []change{{"Group", g.ID, up, scim.ReasonMembers}, {"User", b.ID, rm, scim.ReasonDeleted}})
	if _, err := s.UpdateGroup(ctx, g.ID, 0, func(_ *scim.Group, ops *store.MemberOps) error {
		ops.Add = []scim.Member{{Value: a.ID}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	step("re-add", []change{{"Group", g.ID, up, scim.ReasonMembers}, {"User", a.ID, up, scim.ReasonMembers}})
	if err := s.DeleteGroup(ctx, g.ID, 0); err != nil {
		t.Fatal(err)
	}
	step("delete group", []change{{"Group", g.ID, rm, scim.ReasonDeleted}, {"User", a.ID, up, scim.ReasonMembers}})
	if err := s.DeleteUser(ctx, a.ID, 0); err != nil {
		t.Fatal(err)
	}
	step("delete user", []change{{"User", a.ID, rm, scim.ReasonDeleted}})

	es, err := s.Journal(ctx, 0, 3)
	if err != nil || len(es) != 3 || es[0].Seq >= es[2].Seq {
		t.Errorf("Journal(0, 3) = %v, %v", es, err)
	}
	es, err = s.Journal(ctx, head, 10)
	if err != nil || len(es) != 0 {
		t.Errorf("Journal(head) = %v, %v", es, err)
	}
}

// testJournalAtomic checks that a failed write leaves no journal row.
func testJournalAtomic(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := createUser(t, s, scim.User{UserName: "taken"})
	g := createGroup(t, s, scim.Group{DisplayName: "grp"})
	head, _ := s.JournalHead(ctx)
	failures := []struct {
		name string
		fn   func() error
	}{
		{"create conflict", func() error { _, err := s.CreateUser(ctx, scim.User{UserName: "TAKEN"}); return err }},
		{"update aborted", func() error {
			_, err := s.UpdateUser(ctx, u.ID, 0, func(*scim.User) error { return errors.New("no") })
			return err
		}},
		{"replace stale", func() error { v := u; v.Meta = nil; _, err := s.ReplaceUser(ctx, v, 9); return err }},
		{"delete stale", func() error { return s.DeleteUser(ctx, u.ID, 9) }},
		{"group with unknown member", func() error {
			_, err := s.CreateGroup(ctx, scim.Group{DisplayName: "new", Members: []scim.Member{{Value: "ghost"}}})
			return err
		}},
		{"member op with unknown member", func() error {
			_, err := s.UpdateGroup(ctx, g.ID, 0, func(_ *scim.Group, ops *store.MemberOps) error {
				ops.Add = []scim.Member{{Value: u.ID}, {Value: "ghost"}}
				return nil
			})
			return err
		}},
		{"group conflict", func() error { _, err := s.CreateGroup(ctx, scim.Group{DisplayName: "GRP"}); return err }},
	}
	for _, f := range failures {
		if err := f.fn(); err == nil {
			t.Errorf("%s: succeeded", f.name)
		}
		if h, _ := s.JournalHead(ctx); h != head {
			t.Errorf("%s: journal head moved %d → %d", f.name, head, h)
		}
	}
	if got, _ := s.GetGroup(ctx, g.ID, true); len(got.Members) != 0 {
		t.Errorf("failed member op left members %v", got.Members)
	}
}

func testTrimJournal(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for _, n := range []string{"t1", "t2", "t3", "t4"} {
		createUser(t, s, scim.User{UserName: n})
	}
	head, _ := s.JournalHead(ctx)
	if n, err := s.TrimJournal(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("TrimJournal(an hour ago) = %d, %v", n, err)
	}
	if _, err := s.Journal(ctx, 0, 10); err != nil {
		t.Errorf("Journal(0) before trimming: %v", err)
	}
	n, err := s.TrimJournal(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("TrimJournal(all) = %d, %v; want 3 (the newest stays)", n, err)
	}
	if h, _ := s.JournalHead(ctx); h != head {
		t.Errorf("head after trim = %d, want %d", h, head)
	}
	_, err = s.Journal(ctx, 0, 10)
	wantErr(t, "Journal(0) after trim", err, store.ErrExpiredCursor)
	_, err = s.Journal(ctx, head-2, 10)
	wantErr(t, "Journal(head-2) after trim", err, store.ErrExpiredCursor)
	es, err := s.Journal(ctx, head-1, 10)
	if err != nil || len(es) != 1 || es[0].Seq != head {
		t.Errorf("Journal(head-1) = %v, %v", es, err)
	}
	if es, err := s.Journal(ctx, head, 10); err != nil || len(es) != 0 {
		t.Errorf("Journal(head) = %v, %v", es, err)
	}
	// Trimming again keeps the head.
	if n, err := s.TrimJournal(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("second trim = %d, %v", n, err)
	}
	u := createUser(t, s, scim.User{UserName: "t5"})
	es, err = s.Journal(ctx, head, 10)
	if err != nil || len(es) != 1 || es[0].ID != u.ID {
		t.Errorf("after trim, new change = %v, %v", es, err)
	}
}

// testJournalConcurrent has writers race while a poller follows the journal
// the way the Changes feed does: every change must be seen exactly once, in
// increasing order, and the counters must agree.
func testJournalConcurrent(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	const writers, each = 6, 15
	seen := map[string]int{}
	var after int64
	poll := func() {
		es, err := s.Journal(ctx, after, 1000)
		if err != nil {
			t.Errorf("Journal(%d): %v", after, err)
			return
		}
		for _, e := range es {
			if e.Seq <= after {
				t.Errorf("journal went back: %d after %d", e.Seq, after)
			}
			after = e.Seq
			seen[e.ID]++
		}
	}
	var wg sync.WaitGroup
	ids := make([][]string, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				u, err := s.CreateUser(ctx, scim.User{UserName: fmt.Sprintf("w%d-%d", w, i)})
				if err != nil {
					t.Errorf("CreateUser: %v", err)
					return
				}
				ids[w] = append(ids[w], u.ID)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for polling := true; polling; {
		select {
		case <-done:
			polling = false
		default:
			poll()
		}
	}
	poll()
	for _, ws := range ids {
		for _, id := range ws {
			if seen[id] != 1 {
				t.Errorf("user %s seen %d times by the poller", id, seen[id])
			}
		}
	}
	if p, err := s.ListUsers(ctx, store.Query{}); err != nil || p.Total != writers*each {
		t.Errorf("Total = %d, %v; want %d", p.Total, err, writers*each)
	}
}
