package localtest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/local"
)

func testRecords(t *testing.T, d local.Directory) {
	r, ok := d.(local.Records)
	if !ok {
		t.Skip("backend has no Records")
	}
	ctx := ctxFor(t)
	for _, rec := range []local.Record{
		{Kind: "setting", Key: "removal-action", Value: []byte("suspend")},
		{Kind: "setting", Key: "account-mapping", Value: []byte("email")},
		{Kind: "server", Key: "hub-1", Value: []byte(`{"url":"https://hub.example"}`)},
		{Kind: "setup-secret", Key: "h1", Value: []byte("x"), Expires: time.Now().Add(time.Hour)},
		{Kind: "setup-secret", Key: "old", Value: []byte("x"), Expires: time.Now().Add(-time.Second)},
	} {
		if err := r.PutRecord(ctx, rec); err != nil {
			t.Fatalf("PutRecord(%s/%s): %v", rec.Kind, rec.Key, err)
		}
	}
	if err := r.PutRecord(ctx, local.Record{Kind: "setting", Key: "removal-action", Value: []byte("delete")}); err != nil {
		t.Fatal(err)
	}
	got, err := r.GetRecord(ctx, "setting", "removal-action")
	if err != nil || string(got.Value) != "delete" || got.Modified.IsZero() {
		t.Fatalf("GetRecord = %+v, %v", got, err)
	}
	_, err = r.GetRecord(ctx, "setting", "absent")
	wantErr(t, "GetRecord(absent)", err, local.ErrNotFound)
	_, err = r.GetRecord(ctx, "setup-secret", "old")
	wantErr(t, "GetRecord(expired)", err, local.ErrNotFound)
	list, err := r.ListRecords(ctx, "setting")
	if err != nil || len(list) != 2 || list[0].Key != "account-mapping" || list[1].Key != "removal-action" {
		t.Fatalf("ListRecords(setting) = %+v, %v", list, err)
	}
	if list, _ := r.ListRecords(ctx, "setup-secret"); len(list) != 1 || list[0].Key != "h1" {
		t.Fatalf("ListRecords(setup-secret) = %+v (expired ones must not show)", list)
	}
	for _, bad := range []local.Record{{Kind: "", Key: "k"}, {Kind: "k", Key: ""}, {Kind: "k", Key: "v", Value: bytes.Repeat([]byte("x"), 1<<20+1)}} {
		err := r.PutRecord(ctx, bad)
		wantErr(t, fmt.Sprintf("PutRecord(%q,%q)", bad.Kind, bad.Key), err, local.ErrInvalid)
	}
	// TakeRecord: exactly one of several concurrent takers wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := r.TakeRecord(ctxFor(t), "setup-secret", "h1")
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
				if string(rec.Value) != "x" {
					t.Errorf("TakeRecord value %q", rec.Value)
				}
			} else {
				wantErr(t, "losing TakeRecord", err, local.ErrNotFound)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d TakeRecord calls won, want exactly 1", wins)
	}
	_, err = r.TakeRecord(ctx, "setup-secret", "old")
	wantErr(t, "TakeRecord(expired)", err, local.ErrNotFound)
	if err := r.DeleteRecord(ctx, "setting", "account-mapping"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteRecord(ctx, "setting", "account-mapping"); err != nil {
		t.Fatalf("DeleteRecord(absent): %v", err)
	}
	n, err := r.DeleteExpiredRecords(ctx)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredRecords = %d, %v; want 1", n, err)
	}
}

func taskRecords(t *testing.T, d local.Directory) local.TaskRecords {
	t.Helper()
	r, ok := d.(local.TaskRecords)
	if !ok {
		t.Skip("backend has no TaskRecords")
	}
	return r
}

func testTaskLocks(t *testing.T, d local.Directory) {
	r := taskRecords(t, d)
	ctx := ctxFor(t)
	if _, err := r.LockToken(ctx, "hub", "users"); !errors.Is(err, local.ErrNotFound) {
		t.Fatalf("LockToken of a lock never taken: %v, want ErrNotFound", err)
	}
	if _, err := r.LockHolder(ctx, "hub", "users"); !errors.Is(err, local.ErrNotFound) {
		t.Fatalf("LockHolder of a free lock: %v, want ErrNotFound", err)
	}
	// Releasing a lock never taken is not an error.
	if err := r.ReleaseLock(ctx, local.TaskLease{Scope: "hub", Name: "users", Owner: "o", Token: 5}); err != nil {
		t.Fatalf("ReleaseLock of a lock never taken: %v", err)
	}
	before := time.Now().UnixMilli()
	l1, err := r.AcquireLock(ctx, "hub", "users", "owner-1", time.Hour)
	if err != nil || l1.Token < before || l1.Owner != "owner-1" || l1.Scope != "hub" || l1.Name != "users" {
		t.Fatalf("AcquireLock = %+v, %v; want a token seeded from the clock (≥ %d)", l1, err, before)
	}
	if h, err := r.LockHolder(ctx, "hub", "users"); err != nil || h.Owner != "owner-1" || h.Token != l1.Token || time.Until(h.Expires) <= 0 {
		t.Fatalf("LockHolder = %+v, %v", h, err)
	}
	_, err = r.AcquireLock(ctx, "hub", "users", "owner-2", time.Hour)
	wantErr(t, "AcquireLock by another owner", err, local.ErrConflict)
	// Another scope and another name are independent.
	if _, err := r.AcquireLock(ctx, "hub-2", "users", "owner-2", time.Hour); err != nil {
		t.Fatalf("AcquireLock in another scope: %v", err)
	}
	if _, err := r.AcquireLock(ctx, "hub", "cleanup", "owner-2", time.Hour); err != nil {
		t.Fatalf("AcquireLock of another name: %v", err)
	}
	if l1.Previous != "" {
		t.Fatalf("first lease has previous owner %q", l1.Previous)
	}
	again, err := r.AcquireLock(ctx, "hub", "users", "owner-1", time.Hour)
	if err != nil || again.Token != l1.Token || again.Previous != "" {
		t.Fatalf("retried AcquireLock = %+v, %v; want token %d", again, err, l1.Token)
	}
	if err := r.RenewLock(ctx, l1, time.Hour); err != nil {
		t.Fatalf("RenewLock: %v", err)
	}
	for _, bad := range []local.TaskLease{
		{Scope: "hub", Name: "users", Owner: "owner-2", Token: l1.Token},
		{Scope: "hub", Name: "users", Owner: "owner-1", Token: l1.Token - 1},
	} {
		wantErr(t, fmt.Sprintf("RenewLock(%+v)", bad), r.RenewLock(ctx, bad, time.Hour), local.ErrConflict)
	}
	for range 2 { // the second is a retry
		if err := r.ReleaseLock(ctx, l1); err != nil {
			t.Fatalf("ReleaseLock: %v", err)
		}
	}
	// A renewal in flight when the lease was released does not revive it.
	wantErr(t, "RenewLock after release", r.RenewLock(ctx, l1, time.Hour), local.ErrConflict)
	if _, err := r.LockHolder(ctx, "hub", "users"); !errors.Is(err, local.ErrNotFound) {
		t.Fatalf("LockHolder after release: %v", err)
	}
	if tok, err := r.LockToken(ctx, "hub", "users"); err != nil || tok != l1.Token {
		t.Fatalf("LockToken after release = %d, %v; want the last token %d", tok, err, l1.Token)
	}
	l2, err := r.AcquireLock(ctx, "hub", "users", "owner-2", time.Hour)
	if err != nil || l2.Token <= l1.Token || l2.Previous != "owner-1" {
		t.Fatalf("AcquireLock after release = %+v, %v; want a token over %d after owner-1", l2, err, l1.Token)
	}
	if retry, err := r.AcquireLock(ctx, "hub", "users", "owner-2", time.Hour); err != nil || retry.Previous != "owner-1" {
		t.Fatalf("retried AcquireLock = %+v, %v; want the same previous owner", retry, err)
	}
	wantErr(t, "RenewLock of a superseded lease", r.RenewLock(ctx, l1, time.Hour), local.ErrConflict)
	wantErr(t, "ReleaseLock of a superseded lease", r.ReleaseLock(ctx, l1), local.ErrConflict)
	if h, err := r.LockHolder(ctx, "hub", "users"); err != nil || h.Token != l2.Token {
		t.Fatalf("a stale release freed the lock: %+v, %v", h, err)
	}

	// Expiry: a lapsed lock is free for another owner, with a newer token; until
	// then its holder may renew it.
	s1, err := r.AcquireLock(ctx, "hub", "short", "owner-1", 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	if _, err := r.LockHolder(ctx, "hub", "short"); !errors.Is(err, local.ErrNotFound) {
		t.Fatalf("LockHolder of a lapsed lock: %v", err)
	}
	if err := r.RenewLock(ctx, s1, 150*time.Millisecond); err != nil {
		t.Fatalf("RenewLock after a lapse nobody used: %v", err)
	}
	time.Sleep(250 * time.Millisecond)
	s2, err := r.AcquireLock(ctx, "hub", "short", "owner-2", time.Hour)
	if err != nil || s2.Token <= s1.Token {
		t.Fatalf("AcquireLock of a lapsed lock = %+v, %v", s2, err)
	}
	wantErr(t, "RenewLock by the lapsed holder", r.RenewLock(ctx, s1, time.Hour), local.ErrConflict)

	for _, tt := range []struct {
		scope, name, owner string
		ttl                time.Duration
	}{
		{"", "users", "o", time.Hour},
		{"hub", "", "o", time.Hour},
		{"hub", "users", "", time.Hour},
		{"hub", "users", "o", 0},
	} {
		_, err := r.AcquireLock(ctx, tt.scope, tt.name, tt.owner, tt.ttl)
		wantErr(t, fmt.Sprintf("AcquireLock(%q, %q, %q, %v)", tt.scope, tt.name, tt.owner, tt.ttl), err, local.ErrInvalid)
	}
}

// testTaskLockRace: of many owners acquiring at once exactly one wins.
func testTaskLockRace(t *testing.T, d local.Directory) {
	r := taskRecords(t, d)
	ctx := ctxFor(t)
	for round := range 3 {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			won  []local.TaskLease
			lost int
		)
		start := make(chan struct{})
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := r.AcquireLock(ctx, "hub", "users", fmt.Sprintf("owner-%d-%d", round, i), time.Hour)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, l)
				case errors.Is(err, local.ErrConflict):
					lost++
				default:
					t.Errorf("AcquireLock: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(won) != 1 || lost != 7 {
			t.Fatalf("round %d: %d winners, %d refused", round, len(won), lost)
		}
		if err := r.ReleaseLock(ctx, won[0]); err != nil {
			t.Fatal(err)
		}
	}
}

func testTaskPlans(t *testing.T, d local.Directory) {
	r := taskRecords(t, d)
	ctx := ctxFor(t)
	if _, err := r.TaskPlan(ctx, "hub", "users"); !errors.Is(err, local.ErrNotFound) {
		t.Fatalf("TaskPlan of none: %v", err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	p := local.TaskPlan{Scope: "hub", Task: "users", ID: "p1", Status: "held", Reason: "too many deletions", At: at, Data: []byte(`{"x":1}`)}
	if err := r.SaveTaskPlan(ctx, p, "", 0); err != nil {
		t.Fatal(err)
	}
	other := local.TaskPlan{Scope: "hub", Task: "collections", ID: "c1", Status: "applied", Data: []byte{}}
	if err := r.SaveTaskPlan(ctx, other, "", 0); err != nil {
		t.Fatal(err)
	}
	if err := r.SaveTaskPlan(ctx, local.TaskPlan{Scope: "hub-2", Task: "users", ID: "x", Status: "applied"}, "", 0); err != nil {
		t.Fatal(err)
	}
	got, err := r.TaskPlan(ctx, "hub", "users")
	if err != nil || got.ID != p.ID || got.Status != p.Status || got.Reason != p.Reason || !got.At.Equal(at) || string(got.Data) != string(p.Data) {
		t.Fatalf("TaskPlan = %+v, %v; want %+v", got, err, p)
	}
	list, err := r.TaskPlans(ctx, "hub")
	if err != nil || len(list) != 2 || list[0].Task != "collections" || list[1].Task != "users" {
		t.Fatalf("TaskPlans = %+v, %v", list, err)
	}
	wantErr(t, "SetTaskPlanStatus of another id", r.SetTaskPlanStatus(ctx, "hub", "users", "p0", "approved", at), local.ErrConflict)
	wantErr(t, "SetTaskPlanStatus of no plan", r.SetTaskPlanStatus(ctx, "hub", "cleanup", "p1", "approved", at), local.ErrNotFound)
	for range 2 { // setting the status it has succeeds
		if err := r.SetTaskPlanStatus(ctx, "hub", "users", "p1", "approved", at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := r.TaskPlan(ctx, "hub", "users"); got.Status != "approved" || !got.At.Equal(at.Add(time.Second)) || string(got.Data) != string(p.Data) {
		t.Fatalf("after SetTaskPlanStatus: %+v", got)
	}

	// Fenced saves: only with the lock's newest token, checked per lock name.
	l1, err := r.AcquireLock(ctx, "hub", "users", "o1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p2 := p
	p2.ID, p2.Status = "p2", "applied"
	if err := r.SaveTaskPlan(ctx, p2, "users", l1.Token); err != nil {
		t.Fatalf("fenced save with the newest token: %v", err)
	}
	if err := r.ReleaseLock(ctx, l1); err != nil {
		t.Fatal(err)
	}
	l2, err := r.AcquireLock(ctx, "hub", "users", "o2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p3 := p
	p3.ID = "p3"
	wantErr(t, "fenced save with a stale token", r.SaveTaskPlan(ctx, p3, "users", l1.Token), local.ErrConflict)
	wantErr(t, "fenced save with a lock never taken", r.SaveTaskPlan(ctx, p3, "never", l2.Token), local.ErrConflict)
	if got, _ := r.TaskPlan(ctx, "hub", "users"); got.ID != "p2" {
		t.Fatalf("a refused fenced save wrote: %+v", got)
	}
	if err := r.SaveTaskPlan(ctx, p3, "users", l2.Token); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.TaskPlan(ctx, "hub", "users"); got.ID != "p3" {
		t.Fatalf("fenced save did not replace the plan: %+v", got)
	}
	// A fenced first save (no plan yet) inserts.
	if err := r.SaveTaskPlan(ctx, local.TaskPlan{Scope: "hub", Task: "cleanup", ID: "k1", Status: "applied"}, "users", l2.Token); err != nil {
		t.Fatal(err)
	}

	if err := r.DeleteTaskPlans(ctx, "hub"); err != nil {
		t.Fatal(err)
	}
	if list, err := r.TaskPlans(ctx, "hub"); err != nil || len(list) != 0 {
		t.Fatalf("TaskPlans after delete: %+v, %v", list, err)
	}
	if list, _ := r.TaskPlans(ctx, "hub-2"); len(list) != 1 {
		t.Fatalf("DeleteTaskPlans reached another scope: %+v", list)
	}
	if _, err := r.LockToken(ctx, "hub", "users"); err != nil {
		t.Fatalf("DeleteTaskPlans dropped a lock: %v", err)
	}
	wantErr(t, "SaveTaskPlan without an id", r.SaveTaskPlan(ctx, local.TaskPlan{Scope: "hub", Task: "users", Status: "held"}, "", 0), local.ErrInvalid)
}
