package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

func testTokens(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	h1 := sha256.Sum256([]byte("secret-1"))
	h2 := sha256.Sum256([]byte("secret-2"))
	t1, err := s.CreateToken(ctx, store.Token{Name: "admin", Hash: h1[:]})
	if err != nil || t1.ID == "" || t1.Created.IsZero() {
		t.Fatalf("CreateToken = %+v, %v", t1, err)
	}
	t2, err := s.CreateToken(ctx, store.Token{ID: "bridge-token", Name: "bridge", Hash: h2[:], ReadOnly: true, ClientID: "client-1"})
	if err != nil || t2.ID != "bridge-token" {
		t.Fatalf("CreateToken(with id) = %+v, %v", t2, err)
	}
	h3 := sha256.Sum256([]byte("secret-3"))
	_, err = s.CreateToken(ctx, store.Token{Name: "admin", Hash: h3[:]})
	wantErr(t, "CreateToken(duplicate name)", err, store.ErrConflict)
	_, err = s.CreateToken(ctx, store.Token{Name: "other", Hash: h1[:]})
	wantErr(t, "CreateToken(duplicate hash)", err, store.ErrConflict)

	got, err := s.TokenByHash(ctx, h2[:])
	if err != nil || got.ID != t2.ID || !got.ReadOnly || got.ClientID != "client-1" || got.Name != "bridge" || !bytes.Equal(got.Hash, h2[:]) {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	_, err = s.TokenByHash(ctx, h3[:])
	wantErr(t, "TokenByHash(unknown)", err, store.ErrNotFound)

	at := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.TouchToken(ctx, t1.ID, at); err != nil {
		t.Fatalf("TouchToken: %v", err)
	}
	got, _ = s.TokenByHash(ctx, h1[:])
	if !got.LastUsed.Equal(at) {
		t.Errorf("LastUsed = %v, want %v", got.LastUsed, at)
	}

	if err := s.RevokeToken(ctx, "admin"); err != nil {
		t.Fatalf("RevokeToken(name): %v", err)
	}
	_, err = s.TokenByHash(ctx, h1[:])
	wantErr(t, "TokenByHash(revoked)", err, store.ErrNotFound)
	if err := s.RevokeToken(ctx, t2.ID); err != nil {
		t.Fatalf("RevokeToken(id): %v", err)
	}
	wantErr(t, "RevokeToken(revoked)", s.RevokeToken(ctx, t2.ID), store.ErrNotFound)
	wantErr(t, "RevokeToken(unknown)", s.RevokeToken(ctx, "nope"), store.ErrNotFound)
	// A revoked token's name may be reused.
	if _, err := s.CreateToken(ctx, store.Token{Name: "admin", Hash: h3[:]}); err != nil {
		t.Errorf("CreateToken(name of a revoked token): %v", err)
	}
	ts, err := s.ListTokens(ctx)
	if err != nil || len(ts) != 3 {
		t.Fatalf("ListTokens = %d tokens, %v", len(ts), err)
	}
	revoked := 0
	for _, tk := range ts {
		if tk.Revoked {
			revoked++
		}
	}
	if revoked != 2 {
		t.Errorf("%d revoked tokens listed, want 2", revoked)
	}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	_, err := s.Setting(ctx, "sync-password-hashes")
	wantErr(t, "Setting(unset)", err, store.ErrNotFound)
	for _, v := range []string{"true", "false", ""} {
		if err := s.SetSetting(ctx, "sync-password-hashes", v); err != nil {
			t.Fatalf("SetSetting: %v", err)
		}
		got, err := s.Setting(ctx, "sync-password-hashes")
		if err != nil || got != v {
			t.Errorf("Setting = %q, %v; want %q", got, err, v)
		}
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for i := range 5 {
		if err := s.Audit(ctx, store.AuditEntry{At: at.Add(time.Duration(i) * time.Second), Actor: "cli", Action: "user.create", Target: fmt.Sprintf("u%d", i), Detail: "d"}); err != nil {
			t.Fatalf("Audit: %v", err)
		}
	}
	es, err := s.AuditLog(ctx, 3)
	if err != nil || len(es) != 3 {
		t.Fatalf("AuditLog(3) = %v, %v", es, err)
	}
	if es[0].Target != "u4" || es[2].Target != "u2" || es[0].ID <= es[1].ID {
		t.Errorf("AuditLog not newest first: %+v", es)
	}
	if !es[0].At.Equal(at.Add(4*time.Second)) || es[0].Actor != "cli" || es[0].Action != "user.create" || es[0].Detail != "d" {
		t.Errorf("AuditLog[0] = %+v", es[0])
	}
}

// testBatcherConcurrent: batches and single creates at once (an import
// beside SCIM clients) all succeed — no deadlock between the batch's counts
// and the journal lock — and the listing counts every user.
func testBatcherConcurrent(t *testing.T, s store.Store) {
	b, ok := s.(store.Batcher)
	if !ok {
		t.Skip("store does not implement store.Batcher")
	}
	ctx := ctxFor(t)
	const batches, batchSize, singles = 3, 200, 60
	var wg sync.WaitGroup
	for w := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := make([]scim.User, batchSize)
			for i := range in {
				in[i] = scim.User{UserName: fmt.Sprintf("batch%d-%03d", w, i)}
			}
			_, errs := b.CreateUsers(ctx, in)
			for i, err := range errs {
				if err != nil {
					t.Errorf("batch %d row %d: %v", w, i, err)
					return
				}
			}
		}()
	}
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range singles / 3 {
				if _, err := s.CreateUser(ctx, scim.User{UserName: fmt.Sprintf("single%d-%03d", w, i)}); err != nil {
					t.Errorf("single create: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	res, err := s.ListUsers(ctx, store.Query{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := batches*batchSize + singles; res.Total != want {
		t.Fatalf("total %d, want %d", res.Total, want)
	}
}

func testBatcher(t *testing.T, s store.Store) {
	b, ok := s.(store.Batcher)
	if !ok {
		t.Skip("store does not implement store.Batcher")
	}
	ctx := ctxFor(t)
	createUser(t, s, scim.User{UserName: "existing"})
	head, _ := s.JournalHead(ctx)
	in := []scim.User{
		{UserName: "b1", Emails: []scim.MultiValue{{Value: "b1@x"}}},
		{UserName: "EXISTING", Emails: []scim.MultiValue{{Value: "dup@x"}}},
		{UserName: "b2"},
		{UserName: "b1", Emails: []scim.MultiValue{{Value: "dup2@x"}}},
		{UserName: ""},
		{UserName: "b3", Connect: &scim.ConnectUser{Interests: []string{"x"}}},
	}
	out, errs := b.CreateUsers(ctx, in)
	if len(out) != len(in) || len(errs) != len(in) {
		t.Fatalf("CreateUsers returned %d users and %d errors for %d inputs", len(out), len(errs), len(in))
	}
	wantOK := []bool{true, false, true, false, false, true}
	for i, ok := range wantOK {
		if (errs[i] == nil) != ok {
			t.Errorf("row %d (%q): err %v", i, in[i].UserName, errs[i])
		}
		if ok && (out[i].ID == "" || out[i].Meta == nil) {
			t.Errorf("row %d: result %+v", i, out[i])
		}
	}
	wantErr(t, "duplicate of an existing user", errs[1], store.ErrConflict)
	wantErr(t, "duplicate within the batch", errs[3], store.ErrConflict)
	wantErr(t, "empty userName", errs[4], store.ErrInvalid)
	p, err := s.ListUsers(ctx, store.Query{Count: 10})
	if err != nil || p.Total != 4 {
		t.Errorf("%d users after batch, want 4: %v", p.Total, err)
	}
	// The failed rows left no child rows behind.
	for _, v := range []string{"dup@x", "dup2@x"} {
		e := mustParse(t, scim.UserResourceType, `emails.value eq "`+v+`"`)
		if p, err := s.ListUsers(ctx, store.Query{Filter: e, Count: 10}); err != nil || p.Total != 0 {
			t.Errorf("a failed row's email %s is stored: %d, %v", v, p.Total, err)
		}
	}
	got, err := s.GetUser(ctx, out[5].ID)
	if err != nil || got.Connect == nil || len(got.Connect.Interests) != 1 {
		t.Errorf("batched user b3 = %+v, %v", got, err)
	}
	cs, _ := changesSince(t, s, head)
	if len(cs) != 3 {
		t.Errorf("%d journal rows for the batch, want 3", len(cs))
	}
}

func testStats(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	a := createUser(t, s, scim.User{UserName: "s1"})
	b := createUser(t, s, scim.User{UserName: "s2"})
	createGroup(t, s, scim.Group{DisplayName: "one", Members: []scim.Member{{Value: a.ID}, {Value: b.ID}}})
	createGroup(t, s, scim.Group{DisplayName: "two", Members: []scim.Member{{Value: a.ID}}})
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st != (store.Stats{Users: 2, Groups: 2, Members: 3}) {
		t.Errorf("Stats = %+v", st)
	}
}
