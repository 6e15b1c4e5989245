package statetest

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/bridge/state"
)

const hubA, hubB = "hub-a", "hub-b"

func apply(t *testing.T, s state.State, hub string, f state.Fence, b state.Batch) map[string]state.Link {
	t.Helper()
	got, err := s.Apply(ctxFor(t), hub, f, b)
	if err != nil {
		t.Fatalf("Apply(%s, %+v): %v", hub, b, err)
	}
	return got
}

func put(t *testing.T, s state.State, hub string, kind state.Kind, links ...state.Link) {
	t.Helper()
	apply(t, s, hub, state.Fence{}, state.Batch{Kind: kind, Put: links})
}

func get(t *testing.T, s state.State, hub string, kind state.Kind, ids ...string) map[string]state.Link {
	t.Helper()
	got, err := state.GetLinks(ctxFor(t), s, hub, kind, ids)
	if err != nil {
		t.Fatalf("GetLinks(%s, %v): %v", hub, ids, err)
	}
	if got == nil {
		t.Fatalf("GetLinks returned a nil map")
	}
	return got
}

// allLinks scans every link of kind, de-duplicated by hub id.
func allLinks(t *testing.T, s state.State, hub string, kind state.Kind, count int) map[string]state.Link {
	t.Helper()
	out := map[string]state.Link{}
	cursor := ""
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("ScanLinks does not end")
		}
		links, next, err := s.ScanLinks(ctxFor(t), hub, kind, cursor, count)
		if err != nil {
			t.Fatalf("ScanLinks(%q): %v", cursor, err)
		}
		for _, l := range links {
			out[l.HubID] = l
		}
		if next == "" {
			return out
		}
		cursor = next
	}
}

func wantLinks(t *testing.T, s state.State, hub string, kind state.Kind, want ...state.Link) {
	t.Helper()
	wm := map[string]state.Link{}
	for _, l := range want {
		wm[l.HubID] = l
	}
	if diff := cmp.Diff(wm, allLinks(t, s, hub, kind, 10)); diff != "" {
		t.Fatalf("links of %s/%s (-want +got):\n%s", hub, kind, diff)
	}
	n, err := s.CountLinks(ctxFor(t), hub, kind)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("CountLinks = %d, %v; want %d", n, err, len(want))
	}
	for _, l := range want {
		got, err := s.LinkByLocal(ctxFor(t), hub, kind, l.LocalID)
		if err != nil || got != l {
			t.Fatalf("LinkByLocal(%s) = %+v, %v; want %+v", l.LocalID, got, err, l)
		}
	}
}

func testLinks(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	if got := get(t, s, hubA, state.KindUser, "u1"); len(got) != 0 {
		t.Fatalf("empty state returned %v", got)
	}
	if _, err := s.LinkByLocal(ctx, hubA, state.KindUser, "L1"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("LinkByLocal on empty state: %v, want ErrNotFound", err)
	}
	if n, err := s.CountLinks(ctx, hubA, state.KindUser); err != nil || n != 0 {
		t.Fatalf("CountLinks on empty state = %d, %v", n, err)
	}
	u1 := state.Link{HubID: "u1", LocalID: "L1", Hash: "h1"}
	u2 := state.Link{HubID: "u2", LocalID: "L2"} // no hash yet
	u3 := state.Link{HubID: "u3", LocalID: "L3", Hash: "with\x00nul and spaces ü"}
	put(t, s, hubA, state.KindUser, u1, u2, u3)
	got := get(t, s, hubA, state.KindUser, "u1", "u2", "u3", "absent")
	if diff := cmp.Diff(map[string]state.Link{"u1": u1, "u2": u2, "u3": u3}, got); diff != "" {
		t.Fatalf("GetLinks (-want +got):\n%s", diff)
	}
	wantLinks(t, s, hubA, state.KindUser, u1, u2, u3)

	// A new hash replaces the old one (the engine applied an update).
	u1.Hash = "h1b"
	u2.Hash = "h2"
	put(t, s, hubA, state.KindUser, u1, u2)
	wantLinks(t, s, hubA, state.KindUser, u1, u2, u3)

	// Delete removes forward and reverse entries; deleting an absent id is fine.
	if err := state.DeleteLinks(ctx, s, hubA, state.Fence{}, state.KindUser, []string{"u2", "never"}); err != nil {
		t.Fatal(err)
	}
	wantLinks(t, s, hubA, state.KindUser, u1, u3)
	if _, err := s.LinkByLocal(ctx, hubA, state.KindUser, "L2"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("reverse entry of a deleted link: %v, want ErrNotFound", err)
	}
	// The freed local id can be linked again, to another hub id.
	u4 := state.Link{HubID: "u4", LocalID: "L2", Hash: "h4"}
	put(t, s, hubA, state.KindUser, u4)
	wantLinks(t, s, hubA, state.KindUser, u1, u3, u4)
	// An empty batch is a no-op.
	if got := apply(t, s, hubA, state.Fence{}, state.Batch{Kind: state.KindUser}); len(got) != 0 {
		t.Fatalf("empty batch returned %v", got)
	}
}

func testLinksRelink(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	a := state.Link{HubID: "a", LocalID: "L1", Hash: "x"}
	b := state.Link{HubID: "b", LocalID: "L2", Hash: "y"}
	put(t, s, hubA, state.KindUser, a, b)

	// Relinking a hub id to another local id drops its old reverse entry.
	a2 := state.Link{HubID: "a", LocalID: "L9", Hash: "x2"}
	put(t, s, hubA, state.KindUser, a2)
	wantLinks(t, s, hubA, state.KindUser, a2, b)
	if _, err := s.LinkByLocal(ctx, hubA, state.KindUser, "L1"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("old reverse entry after relink: %v, want ErrNotFound", err)
	}

	// Swapping two local ids in one batch is allowed.
	aSw := state.Link{HubID: "a", LocalID: "L2"}
	bSw := state.Link{HubID: "b", LocalID: "L9"}
	put(t, s, hubA, state.KindUser, aSw, bSw)
	wantLinks(t, s, hubA, state.KindUser, aSw, bSw)

	// Deleting a link and giving its local id to another hub id in one batch.
	c := state.Link{HubID: "c", LocalID: "L2", Hash: "z"}
	apply(t, s, hubA, state.Fence{}, state.Batch{Kind: state.KindUser, Delete: []string{"a"}, Put: []state.Link{c}})
	wantLinks(t, s, hubA, state.KindUser, bSw, c)
}

func testLinksConflict(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	a := state.Link{HubID: "a", LocalID: "L1", Hash: "x"}
	b := state.Link{HubID: "b", LocalID: "L2", Hash: "y"}
	put(t, s, hubA, state.KindUser, a, b)
	tests := []struct {
		name string
		b    state.Batch
	}{
		{"local id taken", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "c", LocalID: "L1"}}}},
		{"taken with valid neighbours", state.Batch{Kind: state.KindUser,
			Put:     []state.Link{{HubID: "d", LocalID: "L7"}, {HubID: "c", LocalID: "L2"}, {HubID: "e", LocalID: "L8"}},
			Delete:  []string{"a"},
			Cursors: map[string]string{"users.changes": "should-not-be-written"},
			Get:     []string{"a"}}},
		{"relink onto taken local id", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "a", LocalID: "L2"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Apply(ctx, hubA, state.Fence{}, tt.b)
			if !errors.Is(err, state.ErrConflict) {
				t.Fatalf("Apply = %v, %v; want ErrConflict", got, err)
			}
			wantLinks(t, s, hubA, state.KindUser, a, b)
			if v, err := s.Cursor(ctx, hubA, "users.changes"); !errors.Is(err, state.ErrNotFound) {
				t.Fatalf("cursor written by a refused batch: %q, %v", v, err)
			}
		})
	}
	// The same local id in the group map is no conflict: the maps are separate.
	put(t, s, hubA, state.KindGroup, state.Link{HubID: "c", LocalID: "L1"})
}

func testLinksInvalid(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	a := state.Link{HubID: "a", LocalID: "L1", Hash: "x"}
	put(t, s, hubA, state.KindUser, a)
	tests := []struct {
		name string
		b    state.Batch
	}{
		{"no kind", state.Batch{Put: []state.Link{{HubID: "b", LocalID: "L2"}}}},
		{"unknown kind", state.Batch{Kind: "course", Put: []state.Link{{HubID: "b", LocalID: "L2"}}}},
		{"empty hub id", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "", LocalID: "L2"}}}},
		{"empty local id", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "b", LocalID: ""}}}},
		{"control char", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "b", LocalID: "L\n2"}}}},
		{"too long", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "b", LocalID: fmt.Sprintf("%01025d", 0)}}}},
		{"hub id twice", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "b", LocalID: "L2"}, {HubID: "b", LocalID: "L3"}}}},
		{"local id twice", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "b", LocalID: "L2"}, {HubID: "c", LocalID: "L2"}}}},
		{"put and delete", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "b", LocalID: "L2"}}, Delete: []string{"b"}}},
		{"empty delete id", state.Batch{Kind: state.KindUser, Delete: []string{""}}},
		{"empty get id", state.Batch{Kind: state.KindUser, Get: []string{""}}},
		{"empty cursor name", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "b", LocalID: "L2"}}, Cursors: map[string]string{"": "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Apply(ctx, hubA, state.Fence{}, tt.b)
			if !errors.Is(err, state.ErrInvalid) {
				t.Fatalf("Apply = %v, %v; want ErrInvalid", got, err)
			}
			wantLinks(t, s, hubA, state.KindUser, a)
		})
	}
	if _, err := s.Apply(ctx, hubA, state.Fence{Token: 5}, state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "b", LocalID: "L2"}}}); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("fence without a task: %v, want ErrInvalid", err)
	}
	for _, kind := range []state.Kind{"", "course"} {
		if _, err := s.LinkByLocal(ctx, hubA, kind, "L1"); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("LinkByLocal(kind %q): %v, want ErrInvalid", kind, err)
		}
		if _, err := s.CountLinks(ctx, hubA, kind); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("CountLinks(kind %q): %v, want ErrInvalid", kind, err)
		}
		if _, _, err := s.ScanLinks(ctx, hubA, kind, "", 10); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("ScanLinks(kind %q): %v, want ErrInvalid", kind, err)
		}
	}
}

// testLinksIdempotent applies every kind of link write twice, as a client that
// resends a command after a lost reply does, and expects the state of one write.
func testLinksIdempotent(t *testing.T, h Harness) {
	s := h.State
	a := state.Link{HubID: "a", LocalID: "L1", Hash: "x"}
	b := state.Link{HubID: "b", LocalID: "L2", Hash: "y"}
	steps := []struct {
		name string
		b    state.Batch
		want []state.Link
	}{
		{"put", state.Batch{Kind: state.KindUser, Put: []state.Link{a, b}}, []state.Link{a, b}},
		{"relink", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "a", LocalID: "L3", Hash: "x2"}}},
			[]state.Link{{HubID: "a", LocalID: "L3", Hash: "x2"}, b}},
		{"swap", state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "a", LocalID: "L2"}, {HubID: "b", LocalID: "L3"}}},
			[]state.Link{{HubID: "a", LocalID: "L2"}, {HubID: "b", LocalID: "L3"}}},
		{"delete and reuse", state.Batch{Kind: state.KindUser, Delete: []string{"a"}, Put: []state.Link{{HubID: "c", LocalID: "L2"}}},
			[]state.Link{{HubID: "b", LocalID: "L3"}, {HubID: "c", LocalID: "L2"}}},
		{"delete", state.Batch{Kind: state.KindUser, Delete: []string{"b", "c"}}, nil},
	}
	for _, st := range steps {
		for range 2 {
			apply(t, s, hubA, state.Fence{}, st.b)
		}
		wantLinks(t, s, hubA, state.KindUser, st.want...)
	}
}

func testLinksBatchCursors(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	a := state.Link{HubID: "a", LocalID: "L1", Hash: "x"}
	b := state.Link{HubID: "b", LocalID: "L2", Hash: "y"}
	put(t, s, hubA, state.KindUser, a)
	// Commit page k (b), drop a, advance the cursor, and read page k+1 — which sees
	// this batch's own writes.
	got := apply(t, s, hubA, state.Fence{}, state.Batch{
		Kind:    state.KindUser,
		Delete:  []string{"a"},
		Put:     []state.Link{b},
		Cursors: map[string]string{"users.watermark": "2026-01-01T00:00:00Z", "users.page": "3"},
		Get:     []string{"a", "b", "c"},
	})
	if diff := cmp.Diff(map[string]state.Link{"b": b}, got); diff != "" {
		t.Fatalf("Get after writes (-want +got):\n%s", diff)
	}
	for name, want := range map[string]string{"users.watermark": "2026-01-01T00:00:00Z", "users.page": "3"} {
		if v, err := s.Cursor(ctx, hubA, name); err != nil || v != want {
			t.Fatalf("Cursor(%s) = %q, %v; want %q", name, v, err, want)
		}
	}
	// A cursor value "" in a batch deletes it.
	apply(t, s, hubA, state.Fence{}, state.Batch{Kind: state.KindUser, Cursors: map[string]string{"users.page": ""}})
	if _, err := s.Cursor(ctx, hubA, "users.page"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("cursor set to \"\" in a batch: %v, want ErrNotFound", err)
	}
}

func testLinksKinds(t *testing.T, h Harness) {
	s := h.State
	u := state.Link{HubID: "same", LocalID: "L1", Hash: "user"}
	g := state.Link{HubID: "same", LocalID: "G1", Hash: "group"}
	put(t, s, hubA, state.KindUser, u)
	put(t, s, hubA, state.KindGroup, g)
	wantLinks(t, s, hubA, state.KindUser, u)
	wantLinks(t, s, hubA, state.KindGroup, g)
	if err := state.DeleteLinks(ctxFor(t), s, hubA, state.Fence{}, state.KindGroup, []string{"same"}); err != nil {
		t.Fatal(err)
	}
	wantLinks(t, s, hubA, state.KindUser, u)
	wantLinks(t, s, hubA, state.KindGroup)
}

// testLinksConcurrent races writers on disjoint and overlapping ids and checks the
// forward and reverse maps agree afterwards.
func testLinksConcurrent(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	const writers, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				// Every writer fights over hub id "shared" (relinking it to its own local
				// id) and writes its own ids.
				b := state.Batch{Kind: state.KindUser, Put: []state.Link{
					{HubID: fmt.Sprintf("w%d-%d", w, r), LocalID: fmt.Sprintf("L%d-%d", w, r)},
					{HubID: "shared", LocalID: fmt.Sprintf("S%d-%d", w, r)},
				}}
				if _, err := s.Apply(ctx, hubA, state.Fence{}, b); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Apply: %v", err)
	}
	links := allLinks(t, s, hubA, state.KindUser, 50)
	if len(links) != writers*rounds+1 {
		t.Fatalf("%d links, want %d", len(links), writers*rounds+1)
	}
	n, err := s.CountLinks(ctx, hubA, state.KindUser)
	if err != nil || n != int64(len(links)) {
		t.Fatalf("CountLinks = %d, %v; want %d (a stale reverse entry or a lost link)", n, err, len(links))
	}
	for _, l := range links {
		got, err := s.LinkByLocal(ctx, hubA, state.KindUser, l.LocalID)
		if err != nil || got != l {
			t.Fatalf("reverse of %+v = %+v, %v", l, got, err)
		}
	}
	// Only the winning local id of "shared" has a reverse entry.
	for w := range writers {
		for r := range rounds {
			id := fmt.Sprintf("S%d-%d", w, r)
			if id == links["shared"].LocalID {
				continue
			}
			if _, err := s.LinkByLocal(ctx, hubA, state.KindUser, id); !errors.Is(err, state.ErrNotFound) {
				t.Fatalf("stale reverse entry %s: %v", id, err)
			}
		}
	}
}

func testScanLinks(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	if links, next, err := s.ScanLinks(ctx, hubA, state.KindUser, "", 10); err != nil || len(links) != 0 || next != "" {
		t.Fatalf("ScanLinks on empty = %v, %q, %v", links, next, err)
	}
	const n = 1234
	var want []state.Link
	for i := 0; i < n; i += 200 {
		var page []state.Link
		for j := i; j < min(i+200, n); j++ {
			page = append(page, state.Link{HubID: fmt.Sprintf("u%05d", j), LocalID: fmt.Sprintf("L%05d", j), Hash: fmt.Sprint(j)})
		}
		put(t, s, hubA, state.KindUser, page...)
		want = append(want, page...)
	}
	for _, count := range []int{1, 7, 100, 5000} {
		got := allLinks(t, s, hubA, state.KindUser, count)
		if len(got) != n {
			t.Fatalf("count %d: scanned %d links, want %d", count, len(got), n)
		}
		for _, l := range want {
			if got[l.HubID] != l {
				t.Fatalf("count %d: %s = %+v, want %+v", count, l.HubID, got[l.HubID], l)
			}
		}
	}
	// Links deleted during a scan do not stop it, and links present throughout are
	// all returned.
	seen := map[string]bool{}
	cursor := ""
	deleted := false
	for {
		links, next, err := s.ScanLinks(ctx, hubA, state.KindUser, cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			seen[l.HubID] = true
		}
		if !deleted {
			var ids []string
			for j := 0; j < n; j += 2 {
				ids = append(ids, fmt.Sprintf("u%05d", j))
			}
			if err := state.DeleteLinks(ctx, s, hubA, state.Fence{}, state.KindUser, ids); err != nil {
				t.Fatal(err)
			}
			deleted = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	for j := 1; j < n; j += 2 {
		if !seen[fmt.Sprintf("u%05d", j)] {
			t.Fatalf("u%05d, present throughout, was not scanned", j)
		}
	}
	var ids []string
	for id := range allLinks(t, s, hubA, state.KindUser, 100) {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) != n/2 || ids[0] != "u00001" {
		t.Fatalf("after deleting the even ids: %d links starting %v", len(ids), ids[:min(3, len(ids))])
	}
}
