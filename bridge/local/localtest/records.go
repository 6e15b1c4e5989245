package localtest

import (
	"bytes"
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
