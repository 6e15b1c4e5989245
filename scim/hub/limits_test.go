package hub

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
)

// longFilter is n clauses joined by "or".
func longFilter(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`userName eq "u%d"`, i)
	}
	return strings.Join(parts, " or ")
}

// rawGet sends a GET for target on a fresh connection and reads the response,
// so that the test sees exactly what the server wrote, however it ends.
func rawGet(t *testing.T, base, target, token string) (*http.Response, []byte, time.Duration) {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	go func() {
		// The server may answer before it has read everything; write on.
		_, _ = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", target, u.Host, token)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body, time.Since(start)
}

// TestOversizeRequests: a filter too long for any URL limit gets a SCIM error
// (400 invalidFilter, JSON), not net/http's plain-text 431, and nothing is
// written.
func TestOversizeRequests(t *testing.T) {
	ctx := context.Background()
	st := newSQLite(t)
	addUsers(t, st, "ann")
	token, _, err := CreateToken(ctx, st, "test", "admin", false)
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, st, nil)
	before, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name, target string
		detail       string
	}{
		// ~280 KB: reaches the SCIM layer, which applies its filter length limit.
		{"10,000 clauses", "/scim/v2/Users?filter=" + url.QueryEscape(longFilter(10000)), "longer than 4096 bytes"},
		// Over maxHeaderBytes: refused by net/http, rewritten by oversizeConn.
		{"60,000 clauses", "/scim/v2/Users?filter=" + url.QueryEscape(longFilter(60000)), "exceed 1048576 bytes"},
		{"long path", "/scim/v2/Users/" + strings.Repeat("x", 2<<20), "exceed 1048576 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, took := rawGet(t, r.base, tt.target, token)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/scim+json" {
				t.Fatalf("status %d, Content-Type %q, body %.200s; want 400 application/scim+json", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var e scim.ErrorResponse
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body %.200s: %v", body, err)
			}
			if e.Status != "400" || e.ScimType != scim.ErrTypeInvalidFilter || !strings.Contains(e.Detail, tt.detail) ||
				len(e.Schemas) != 1 || e.Schemas[0] != scim.SchemaError {
				t.Errorf("error %+v, want 400 invalidFilter containing %q", e, tt.detail)
			}
			if took > 2*time.Second {
				t.Errorf("answered after %v", took)
			}
		})
	}

	// The hub still serves, and nothing changed.
	if code, _, body := get(t, r.base+"/scim/v2/Users?filter="+url.QueryEscape(`userName eq "ann"`), token); code != 200 || !strings.Contains(body, `"totalResults":1`) {
		t.Errorf("after oversize requests: %d %s", code, body)
	}
	after, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("stats %+v after oversize requests, want %+v", after, before)
	}
}

func TestOversizeConnPassesOtherWrites(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &oversizeConn{a}
	go func() {
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
		_, _ = c.Write([]byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large"))
		a.Close()
	}()
	got, _ := io.ReadAll(b)
	want := "HTTP/1.1 200 OK\r\n\r\n" + string(oversizeResponse)
	if string(got) != want {
		t.Errorf("wrote\n%q\nwant\n%q", got, want)
	}
}
