package hub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/server"
)

// RequestIDHeader carries the request id in and out.
const RequestIDHeader = "X-Request-Id"

// requestID returns a client-supplied id when it is short and plain, else a fresh
// random one, so that a hostile header cannot forge log lines.
func requestID(in string) string {
	if n := len(in); n > 0 && n <= 128 && strings.IndexFunc(in, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':')
	}) < 0 {
		return in
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// recorder captures the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// withRequest wraps next with, from the outside in: a request id (set on the
// request and the response), an access log line per request and panic recovery.
// The log never carries request headers (Authorization), the query string
// (filters may name people) or bodies.
func withRequest(log *slog.Logger, clock func() time.Time, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := clock()
		id := requestID(r.Header.Get(RequestIDHeader))
		r.Header.Set(RequestIDHeader, id)
		w.Header().Set(RequestIDHeader, id)
		rec := &recorder{ResponseWriter: w}
		var caller server.Caller // the SCIM handler names the token here
		r = r.WithContext(server.WithCaller(r.Context(), &caller))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
					slog.String("request_id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
					slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
				if rec.status == 0 {
					writeInternalError(rec, r)
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("request_id", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Int64("bytes", rec.bytes),
				slog.Duration("duration", clock().Sub(start)),
				slog.String("remote", r.RemoteAddr),
				slog.String("user_agent", r.UserAgent()),
			}
			if caller.Token != "" {
				attrs = append(attrs, slog.String("token", caller.Token))
			}
			log.LogAttrs(r.Context(), level, "request", attrs...)
		}()
		next.ServeHTTP(rec, r)
	})
}

// writeInternalError answers 500: a SCIM error body under /scim/, plain text
// elsewhere. It never carries the panic's text.
func writeInternalError(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, scimPrefix) {
		writeSCIMError(w, &scim.Error{Status: http.StatusInternalServerError, Detail: "internal server error"})
		return
	}
	http.Error(w, "internal server error", http.StatusInternalServerError)
}

func writeSCIMError(w http.ResponseWriter, e *scim.Error) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e.Response())
}
