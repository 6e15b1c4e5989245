package server_test

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/server"
	"github.com/connectsso/connect/scim/server/rfctest"
	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/sqlite"
)

// hub is a SCIM handler over a fresh SQLite store, served by httptest.
type hub struct {
	store  *sqlite.Store
	srv    *httptest.Server
	reg    *prometheus.Registry
	target rfctest.Target
	// skew moves the handler's clock forward (nanoseconds), e.g. past the
	// token cache's TTL.
	skew atomic.Int64
}

// advance moves the handler's clock forward by d.
func (h *hub) advance(d time.Duration) { h.skew.Add(int64(d)) }

const (
	adminSecret    = "admin-secret-for-tests-0123456789"
	readOnlySecret = "read-only-secret-for-tests-012345"
	bridgeSecret   = "bridge-secret-for-tests-012345678"
)

func newHub(tb testing.TB) *hub {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(tb.TempDir(), "hub.db"), sqlite.Options{})
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	for _, tok := range []store.Token{
		{Name: "admin", Hash: hash(adminSecret)},
		{Name: "reader", Hash: hash(readOnlySecret), ReadOnly: true},
		{Name: "bridge", Hash: hash(bridgeSecret), ReadOnly: true, ClientID: "client-1"},
	} {
		if _, err := st.CreateToken(ctx, tok); err != nil {
			tb.Fatalf("create token: %v", err)
		}
	}
	reg := prometheus.NewRegistry()
	h := &hub{store: st, reg: reg}
	h.srv = httptest.NewUnstartedServer(nil)
	level := slog.LevelError
	if os.Getenv("SCIM_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	handler, err := server.New(server.Config{
		Store:        st,
		BaseURL:      "http://" + h.srv.Listener.Addr().String(),
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Registerer:   reg,
		HashPassword: password.Hash,
		MaxPageSize:  50,
		Clock:        func() time.Time { return time.Now().Add(time.Duration(h.skew.Load())) },
	})
	if err != nil {
		tb.Fatalf("server.New: %v", err)
	}
	h.srv.Config.Handler = handler
	h.srv.Start()
	tb.Cleanup(h.srv.Close)
	h.target = rfctest.Target{
		BaseURL:       h.srv.URL + server.DefaultPrefix,
		Token:         adminSecret,
		ReadOnlyToken: readOnlySecret,
		Snapshot:      h.snapshot,
	}
	return h
}

func hash(secret string) []byte {
	s := sha256.Sum256([]byte(secret))
	return s[:]
}

// snapshot is what bad input must leave alone: sizes and the journal head.
func (h *hub) snapshot(tb testing.TB) any {
	tb.Helper()
	ctx := context.Background()
	stats, err := h.store.Stats(ctx)
	if err != nil {
		tb.Fatalf("stats: %v", err)
	}
	head, err := h.store.JournalHead(ctx)
	if err != nil {
		tb.Fatalf("journal head: %v", err)
	}
	return struct {
		Stats store.Stats
		Head  int64
	}{stats, head}
}

func TestRFC7644_3_3_Create(t *testing.T)  { rfctest.RFC7644_3_3_Create(t, newHub(t).target) }
func TestRFC7644_3_4_1_Get(t *testing.T)   { rfctest.RFC7644_3_4_1_Get(t, newHub(t).target) }
func TestRFC7644_3_4_2_Query(t *testing.T) { rfctest.RFC7644_3_4_2_Query(t, newHub(t).target) }
func TestRFC7644_3_4_2_5_Attributes(t *testing.T) {
	rfctest.RFC7644_3_4_2_5_Attributes(t, newHub(t).target)
}
func TestRFC7644_3_4_3_Search(t *testing.T) { rfctest.RFC7644_3_4_3_Search(t, newHub(t).target) }
func TestRFC7644_3_5_1_Put(t *testing.T)    { rfctest.RFC7644_3_5_1_Put(t, newHub(t).target) }
func TestRFC7644_3_5_2_Patch(t *testing.T)  { rfctest.RFC7644_3_5_2_Patch(t, newHub(t).target) }
func TestRFC7644_3_6_Delete(t *testing.T)   { rfctest.RFC7644_3_6_Delete(t, newHub(t).target) }
func TestRFC7644_3_7_Bulk(t *testing.T)     { rfctest.RFC7644_3_7_Bulk(t, newHub(t).target) }
func TestRFC7644_3_9_WriteProjection(t *testing.T) {
	rfctest.RFC7644_3_9_WriteProjection(t, newHub(t).target)
}
func TestRFC7644_3_11_Me(t *testing.T)         { rfctest.RFC7644_3_11_Me(t, newHub(t).target) }
func TestRFC7644_3_12_Errors(t *testing.T)     { rfctest.RFC7644_3_12_Errors(t, newHub(t).target) }
func TestRFC7644_3_14_Versioning(t *testing.T) { rfctest.RFC7644_3_14_Versioning(t, newHub(t).target) }
func TestRFC7644_4_Discovery(t *testing.T)     { rfctest.RFC7644_4_Discovery(t, newHub(t).target) }
func TestRFC9865_Cursor(t *testing.T)          { rfctest.RFC9865_Cursor(t, newHub(t).target) }
func TestChanges(t *testing.T)                 { rfctest.Changes(t, newHub(t).target) }
func TestBadInput(t *testing.T)                { rfctest.BadInput(t, newHub(t).target) }
