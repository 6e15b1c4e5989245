package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

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

// BenchmarkGetUser measures GET /Users/{id} through the handler (no network).
func BenchmarkGetUser(b *testing.B) {
	h, ids := benchUsers(b, 10000)
	handler := h.srv.Config.Handler
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		serve(b, handler, "/scim/v2/Users/"+ids[i%len(ids)])
	}
}

// BenchmarkFilterUserName measures GET /Users?filter=userName eq "…".
func BenchmarkFilterUserName(b *testing.B) {
	h, _ := benchUsers(b, 10000)
	handler := h.srv.Config.Handler
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		serve(b, handler, "/scim/v2/Users?filter="+url.QueryEscape(fmt.Sprintf(`userName eq "bench%07d"`, i%10000)))
	}
}

// BenchmarkListPage measures a 100-user page.
func BenchmarkListPage(b *testing.B) {
	h, _ := benchUsers(b, 10000)
	handler := h.srv.Config.Handler
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		serve(b, handler, fmt.Sprintf("/scim/v2/Users?count=100&startIndex=%d", 1+(i*100)%9000))
	}
}
