package hub

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/scim/server"
	"github.com/connectsso/connect/scim/store"
)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name, in string
		keep     bool
	}{
		{"kept", "abc-123_x.y:z", true},
		{"empty", "", false},
		{"newline forged", "a\nlevel=ERROR", false},
		{"space", "a b", false},
		{"too long", strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := requestID(tt.in)
			if (got == tt.in) != tt.keep {
				t.Fatalf("requestID(%q) = %q, keep=%v", tt.in, got, tt.keep)
			}
			if !tt.keep && len(got) != 24 {
				t.Fatalf("generated id %q, want 24 hex chars", got)
			}
		})
	}
}

func TestWithRequest(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	var seenID string
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		seenID = r.Header.Get(RequestIDHeader)
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("short and stout"))
	})
	mux.HandleFunc("/authed", func(w http.ResponseWriter, r *http.Request) {
		_ = server.WithToken(r.Context(), store.Token{Name: "entra", Hash: []byte("h")}) // as the SCIM handler does
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("secret-internal-detail") })
	mux.HandleFunc("/scim/v2/Users", func(http.ResponseWriter, *http.Request) { panic("boom") })
	h := withRequest(log, time.Now, mux)

	t.Run("request id in and out, access log", func(t *testing.T) {
		logs.Reset()
		req := httptest.NewRequest("GET", "/ok?filter=userName+eq+%22alice%22", nil)
		req.Header.Set(RequestIDHeader, "req-42")
		req.Header.Set("Authorization", "Bearer chub_supersecret")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get(RequestIDHeader); got != "req-42" {
			t.Errorf("response X-Request-Id = %q", got)
		}
		if seenID != "req-42" {
			t.Errorf("handler saw request id %q", seenID)
		}
		var line map[string]any
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", logs.String(), err)
		}
		for k, want := range map[string]any{"msg": "request", "request_id": "req-42", "method": "GET", "path": "/ok", "status": float64(418), "bytes": float64(15)} {
			if line[k] != want {
				t.Errorf("log %s = %v, want %v", k, line[k], want)
			}
		}
		for _, secret := range []string{"chub_supersecret", "Bearer", "alice"} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("log carries %q: %s", secret, logs.String())
			}
		}
	})
	t.Run("token name on the access log", func(t *testing.T) {
		logs.Reset()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/authed", nil))
		if !strings.Contains(logs.String(), `"token":"entra"`) {
			t.Errorf("log lacks the token name: %s", logs.String())
		}
		logs.Reset()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ok", nil))
		if strings.Contains(logs.String(), `"token"`) {
			t.Errorf("unauthenticated request names a token: %s", logs.String())
		}
	})
	t.Run("generated id", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/ok", nil))
		if len(rec.Header().Get(RequestIDHeader)) != 24 {
			t.Errorf("X-Request-Id = %q", rec.Header().Get(RequestIDHeader))
		}
	})
	t.Run("panic becomes 500 without detail", func(t *testing.T) {
		logs.Reset()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/panic", nil))
		if rec.Code != http.StatusInternalServerError {
			t.Fatalf("status %d", rec.Code)
		}
		if strings.Contains(rec.Body.String(), "secret-internal-detail") {
			t.Errorf("body leaks the panic: %q", rec.Body.String())
		}
		if !strings.Contains(logs.String(), "secret-internal-detail") || !strings.Contains(logs.String(), `"status":500`) {
			t.Errorf("log lacks the panic or the 500: %s", logs.String())
		}
	})
	t.Run("panic under /scim is a SCIM error", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/scim/v2/Users", nil))
		if rec.Code != 500 || rec.Header().Get("Content-Type") != "application/scim+json" {
			t.Fatalf("status %d type %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		var body struct{ Schemas []string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Schemas) != 1 {
			t.Fatalf("body %q: %v", rec.Body.String(), err)
		}
	})
}
