package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/server"
	"github.com/connectsso/connect/scim/store"
)

const scimPrefix = server.DefaultPrefix + "/"

// Server is a configured hub: its HTTP handler plus the background work (metrics
// refresh, journal trimming) that runs while it serves.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler

	objects   *prometheus.GaugeVec
	trimmed   prometheus.Counter
	retention prometheus.Gauge
	bgErrs    *prometheus.CounterVec

	samlStore store.IdP // nil when the IdP is off

	// draining is closed when a graceful shutdown starts: Changes
	// long-polls answer at once instead of holding the shutdown.
	draining  chan struct{}
	drainOnce sync.Once
}

// New validates cfg, registers the hub's metrics on cfg.Registry and composes the
// mux. It starts nothing; Run or Serve does.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hub config: %w", err)
	}
	c := cfg.withDefaults()
	s := &Server{cfg: c, log: c.Logger, draining: make(chan struct{})}

	s.objects = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "connect_hub_directory_objects",
		Help: "Objects in the hub directory by kind (users, groups, members), refreshed periodically.",
	}, []string{"kind"})
	s.trimmed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "connect_hub_journal_trimmed_total",
		Help: "Change-journal entries deleted by the retention trimmer.",
	})
	s.retention = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "connect_hub_journal_retention_seconds",
		Help: "Change-journal retention in effect at the trimmer's last run.",
	})
	s.bgErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "connect_hub_background_errors_total",
		Help: "Failures of the hub's background tasks (stats, trim).",
	}, []string{"task"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "connect_hub_build_info",
		Help: "Always 1; the version label names the running build.",
	}, []string{"version"})
	build.WithLabelValues(c.Version).Set(1)
	for _, col := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.objects, s.trimmed, s.retention, s.bgErrs, build,
	} {
		if err := c.Registry.Register(col); err != nil {
			return nil, fmt.Errorf("hub metrics: %w", err)
		}
	}
	for _, task := range []string{"stats", "trim", "sessions"} {
		s.bgErrs.WithLabelValues(task)
	}

	scimHandler, err := server.New(server.Config{
		Store:            c.Store,
		BaseURL:          strings.TrimRight(c.URL, "/"),
		Logger:           c.Logger.With("component", "scim"),
		Registerer:       c.Registry,
		Clock:            c.Clock,
		HashPassword:     password.Hash,
		ChangesRetention: c.JournalRetention,
		Draining:         s.draining,
	})
	if err != nil {
		return nil, fmt.Errorf("hub scim handler: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle(scimPrefix, scimHandler)
	mux.Handle(server.DefaultPrefix, scimHandler)
	if err := s.mountSAML(mux, c); err != nil {
		return nil, err
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.HandleFunc("POST "+scim.RegisterPath, refuseHubRegistration)
	mux.HandleFunc("POST "+scim.DisconnectPath, s.serveDisconnect)
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.Registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(c.Logger.Handler(), slog.LevelError),
	}))
	s.handler = withRequest(c.Logger, c.Clock, mux)
	return s, nil
}

// Handler returns the hub's HTTP handler (for tests and embedding). Background
// tasks run only under Serve or Run.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.log.Warn("readiness: store unreachable", "request_id", r.Header.Get(RequestIDHeader), "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("store unavailable\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Run listens on Config.Listen and serves until ctx is done, then shuts down
// gracefully (in-flight requests get Config.ShutdownTimeout to finish).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("hub listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, runs the background tasks meanwhile, and
// shuts down gracefully. It logs the bound address ("listening", addr=...), which
// is how a caller that asked for port 0 learns the port. It returns nil after a
// clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	bgCtx, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.every(bgCtx, s.cfg.StatsInterval, s.refreshStats) })
	wg.Go(func() { s.every(bgCtx, s.cfg.TrimInterval, s.trimJournal) })
	wg.Go(func() { s.every(bgCtx, s.cfg.TrimInterval, s.cleanSessions) })
	defer func() { stopBG(); wg.Wait() }()

	s.recordIdentity(ctx)
	s.log.Info("listening", "addr", ln.Addr().String(), "url", s.cfg.URL, "name", s.cfg.Name)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(oversizeListener{ln}) }()
	select {
	case err := <-errc:
		return fmt.Errorf("hub serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	s.drainOnce.Do(func() { close(s.draining) })
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("hub shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("hub serve: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// every runs fn now and then every d until ctx is done.
func (s *Server) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) refreshStats(ctx context.Context) {
	st, err := s.cfg.Store.Stats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.bgErrs.WithLabelValues("stats").Inc()
			s.log.Warn("directory stats", "err", err)
		}
		return
	}
	s.objects.WithLabelValues("users").Set(float64(st.Users))
	s.objects.WithLabelValues("groups").Set(float64(st.Groups))
	s.objects.WithLabelValues("members").Set(float64(st.Members))
}

// retention returns the journal retention: the journal-retention hub setting when
// set and valid, else Config.JournalRetention.
func (s *Server) journalRetention(ctx context.Context) time.Duration {
	v, err := s.cfg.Store.Setting(ctx, SettingJournalRetention)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			s.log.Warn("read setting", "key", SettingJournalRetention, "err", err)
		}
		return s.cfg.JournalRetention
	}
	d, err := ParseDuration(v)
	if err != nil || d < time.Hour {
		s.log.Warn("ignoring invalid setting", "key", SettingJournalRetention, "value", v)
		return s.cfg.JournalRetention
	}
	return d
}

func (s *Server) trimJournal(ctx context.Context) {
	keep := s.journalRetention(ctx)
	before := s.cfg.Clock().Add(-keep)
	n, err := s.cfg.Store.TrimJournal(ctx, before)
	if err != nil {
		if ctx.Err() == nil {
			s.bgErrs.WithLabelValues("trim").Inc()
			s.log.Warn("trim journal", "err", err)
		}
		return
	}
	s.trimmed.Add(float64(n))
	s.retention.Set(keep.Seconds())
	if n > 0 {
		s.log.Info("trimmed journal", "deleted", n, "before", before.UTC().Format(time.RFC3339))
	}
}

// maxHeaderBytes bounds a request's line and headers. A SCIM client may put a
// long filter in the URL (a 10,000-clause filter is ~300 KB encoded): up to this
// size the request reaches the SCIM layer, which refuses an overlong filter
// with its own 400 invalidFilter (filter.Limits) and touches nothing. Beyond
// it, oversizeConn answers. Either way a request pins at most a few times this
// much memory while it is read (net/http reads the header in one piece).
const maxHeaderBytes = 1 << 20

// oversizeResponse is what a client gets for a request line and headers longer
// than maxHeaderBytes: a SCIM error (RFC 7644 §3.12) instead of net/http's
// plain-text 431. A URL is the only part of a SCIM request that grows that
// long, and what makes it grow is a filter, hence invalidFilter.
var oversizeResponse = func() []byte {
	body, _ := json.Marshal((&scim.Error{
		Status:   http.StatusBadRequest,
		ScimType: scim.ErrTypeInvalidFilter,
		Detail:   fmt.Sprintf("the request line and headers exceed %d bytes; send a long filter with POST .search (filters are limited to %d bytes)", maxHeaderBytes, filter.DefaultMaxLength),
	}).Response())
	return fmt.Appendf(nil, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/scim+json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}()

// canned431 starts the response net/http writes, directly to the connection and
// in one Write, when a request's header exceeds MaxHeaderBytes. No handler of
// the hub answers 431.
var canned431 = []byte("HTTP/1.1 431 ")

// oversizeListener hands out oversizeConns.
type oversizeListener struct{ net.Listener }

func (l oversizeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &oversizeConn{c}, nil
}

// oversizeConn replaces net/http's canned 431 with oversizeResponse. net/http
// offers no hook for that response: it is written before any handler runs.
type oversizeConn struct{ net.Conn }

func (c *oversizeConn) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, canned431) {
		if _, err := c.Conn.Write(oversizeResponse); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite keeps net/http's half-close before it drops a refused connection
// (so that the client reads the answer rather than a reset).
func (c *oversizeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
