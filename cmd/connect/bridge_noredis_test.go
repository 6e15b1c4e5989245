package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/local"
	localsqlite "github.com/connectsso/connect/bridge/local/sqlite"
)

// TestBridgeWithoutRedis: without --redis, the CLI and a serving bridge share
// task locks and plans through the local store: `bridge sync` finds the users
// task busy while the server long-polls, `plans show` lists the plan the
// server holds, and `plans approve` approves it for the server to apply.
func TestBridgeWithoutRedis(t *testing.T) {
	h := startBridgeHub(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, h.createUser(t, fmt.Sprintf("nr%d", i)))
	}
	path := filepath.Join(t.TempDir(), "bridge.db")
	flags := []string{"--store", "sqlite:" + path}
	server := strings.TrimSpace(mustBridge(t, flags, "servers", "add-manual", "--name", "hub", "--url", h.base, "--token", h.reader))
	mustBridge(t, flags, "settings", "set", "::", "removal-action=delete", "delete-threshold-count=0", "users-interval=1s")
	if out := mustBridge(t, flags, "sync", "--no-progress", "--task", "users"); !strings.Contains(out, "create 5") {
		t.Fatalf("sync: %s", out)
	}

	bp := startBridgeServe(t, flags)
	// The server's first run is a full reconcile; then it long-polls the feed
	// holding the users lock, and a sync from the CLI must not run beside it.
	deadline := time.Now().Add(20 * time.Second)
	for metricSum(t, bp.base, "connect_bridge_sync_runs_total", `task="users"`, `result="ok"`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the serving bridge never finished a users run")
		}
		time.Sleep(100 * time.Millisecond)
	}
	busy := false
	for range 5 {
		_, errOut, code := bridgeCLI(t, flags, "sync", "--no-progress", "--task", "users")
		if code != 0 && strings.Contains(errOut, "running elsewhere") {
			busy = true
			break
		}
		time.Sleep(300 * time.Millisecond) // between two runs of the server
	}
	if !busy {
		t.Fatal("bridge sync ran while the serving bridge held the users lock")
	}

	// Two hub users leave: the server holds the deletions (threshold 0).
	for _, uid := range ids[:2] {
		if code := request(t, http.MethodDelete, h.base+"/scim/v2/Users/"+uid, h.admin, ""); code != http.StatusNoContent {
			t.Fatalf("delete: %d", code)
		}
	}
	type shownPlan struct {
		ID, Status string
		Counts     map[string]int
	}
	var held shownPlan
	for deadline := time.Now().Add(20 * time.Second); held.ID == ""; {
		var shown []shownPlan
		out := mustBridge(t, flags, "plans", "show", "--task", "users", "--json")
		if err := json.Unmarshal([]byte(out), &shown); err != nil {
			t.Fatalf("plans show: %v %s", err, out)
		}
		if len(shown) == 1 && shown[0].Status == "held" && shown[0].Counts["delete"] == 2 {
			held = shown[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CLI never saw the server's held plan: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Approve while the users task is running (a lock held here stands for the
	// server's run): the CLI leaves the applying to the running bridge.
	db, err := localsqlite.Open(context.Background(), "sqlite:"+path, localsqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var lease local.TaskLease
	for deadline := time.Now().Add(10 * time.Second); ; {
		lease, err = db.AcquireLock(context.Background(), server, "users", "test-run", time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, local.ErrConflict) || time.Now().After(deadline) {
			t.Fatalf("take the users lock: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := mustBridge(t, flags, "plans", "approve", "::", held.ID)
	if !strings.Contains(out, "the running bridge applies it") {
		t.Fatalf("approve: %s", out)
	}
	if err := db.ReleaseLock(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
	// The serving bridge — the only one left running — applies the approved
	// plan at its next users run.
	deleted := map[string]bool{}
	var users []map[string]any
	for deadline := time.Now().Add(20 * time.Second); len(deleted) < 2; {
		if err := json.Unmarshal([]byte(mustBridge(t, flags, "users", "list", "--json")), &users); err != nil {
			t.Fatal(err)
		}
		clear(deleted)
		for _, u := range users {
			if u["deleted"] == true {
				deleted[u["hubUserId"].(string)] = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the serving bridge did not apply the approved plan")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(users) != 5 || len(deleted) != 2 || !deleted[ids[0]] || !deleted[ids[1]] {
		t.Fatalf("after approval: %d accounts, deleted %v", len(users), deleted)
	}
}
