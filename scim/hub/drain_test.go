package hub

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestShutdownEndsLongPolls: a graceful stop answers a waiting Changes
// long-poll at once instead of waiting for it (bridges hold one open).
func TestShutdownEndsLongPolls(t *testing.T) {
	ctx := context.Background()
	st := newSQLite(t)
	token, _, err := CreateToken(ctx, st, "test", "admin", false)
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, st, nil)
	_, _, head := get(t, r.base+"/scim/v2/Changes", token)
	i := strings.Index(head, `"nextCursor":"`)
	if i < 0 {
		t.Fatalf("no cursor in %s", head)
	}
	cur := head[i+len(`"nextCursor":"`):]
	cur = cur[:strings.IndexByte(cur, '"')]
	type answer struct {
		code int
		body string
	}
	done := make(chan answer, 1)
	go func() {
		code, _, body := get(t, r.base+"/scim/v2/Changes?wait=30&cursor="+cur, token)
		done <- answer{code, body}
	}()
	time.Sleep(300 * time.Millisecond) // the poll is waiting
	start := time.Now()
	if err := r.stop(); err != nil {
		t.Fatalf("Serve after cancel = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v with a long-poll open", d)
	}
	select {
	case a := <-done:
		if a.code != 200 || !strings.Contains(a.body, `"nextCursor":"`+cur+`"`) {
			t.Fatalf("the drained long-poll answered %d %s", a.code, a.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long-poll was not answered")
	}
}
