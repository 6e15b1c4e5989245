package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// benchUsers loads n users into a fresh hub (directly through the store).
func benchUsers(b *testing.B, n int) (*hub, []string) {
	b.Helper()
	h := newHub(b)
	ctx := context.Background()
	var ids []string
	batcher, ok := any(h.store).(store.Batcher)
	for start := 0; start < n; start += 1000 {
		var us []scim.User
		for i := start; i < min(n, start+1000); i++ {
			us = append(us, scim.User{UserName: fmt.Sprintf("bench%07d", i), Name: &scim.Name{GivenName: "B", FamilyName: fmt.Sprint(i)},
				Emails: []scim.MultiValue{{Value: fmt.Sprintf("b%d@example.com", i), Type: "work", Primary: true}}})
		}
		if ok {
			out, errs := batcher.CreateUsers(ctx, us)
			for i, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, out[i].ID)
			}
			continue
		}
		for _, u := range us {
			out, err := h.store.CreateUser(ctx, u)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, out.ID)
		}
	}
	return h, ids
}

func serve(b *testing.B, h http.Handler, path string) {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		b.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
	}
}

// reportCPU starts measuring the process's CPU time (user + system); the
// function it returns reports it per operation as "cpu-µs/op", steadier than
// the wall time on a machine shared with other work.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGetUser measures GET /Users/{id} through the handler (no network).
func BenchmarkGetUser(b *testing.B) {
	h, ids := benchUsers(b, 10000)
	handler := h.srv.Config.Handler
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		serve(b, handler, "/scim/v2/Users/"+ids[i%len(ids)])
	}
}

// BenchmarkFilterUserName measures GET /Users?filter=userName eq "…".
func BenchmarkFilterUserName(b *testing.B) {
	h, _ := benchUsers(b, 10000)
	handler := h.srv.Config.Handler
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		serve(b, handler, "/scim/v2/Users?filter="+url.QueryEscape(fmt.Sprintf(`userName eq "bench%07d"`, i%10000)))
	}
}

// BenchmarkListPage measures a 100-user page.
func BenchmarkListPage(b *testing.B) {
	h, _ := benchUsers(b, 10000)
	handler := h.srv.Config.Handler
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		serve(b, handler, fmt.Sprintf("/scim/v2/Users?count=100&startIndex=%d", 1+(i*100)%9000))
	}
}

// BenchmarkProjection measures responses cut by attributes or
// excludedAttributes (RFC 7644 §3.4.2.5), which are rendered differently
// from the default: a user with a few attributes, a page of ids (what a
// client reconciling ids asks), and a group without members (what Entra
// asks before every group update).
func BenchmarkProjection(b *testing.B) {
	h, ids := benchUsers(b, 10000)
	handler := h.srv.Config.Handler
	ctx := context.Background()
	members := make([]scim.Member, 50)
	for i := range members {
		members[i] = scim.Member{Value: ids[i]}
	}
	g, err := h.store.CreateGroup(ctx, scim.Group{DisplayName: "bench", Members: members})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, path string }{
		{"user attributes", "/scim/v2/Users/" + ids[42] + "?attributes=userName,name.givenName,emails.value," + url.QueryEscape(scim.SchemaEnterpriseUser+":employeeNumber")},
		{"user excludedAttributes", "/scim/v2/Users/" + ids[42] + "?excludedAttributes=emails,groups"},
		{"page of ids", "/scim/v2/Users?count=100&attributes=id"},
		{"group without members", "/scim/v2/Groups/" + g.ID + "?excludedAttributes=members"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				serve(b, handler, bc.path)
			}
		})
	}
}
