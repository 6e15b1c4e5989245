package hub

import (
	"context"
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
}

// New validates cfg, registers the hub's metrics on cfg.Registry and composes the
// mux. It starts nothing; Run or Serve does.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hub config: %w", err)
	}
	c := cfg.withDefaults()
	s := &Server{cfg: c, log: c.Logger}

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
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	bgCtx, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.every(bgCtx, s.cfg.StatsInterval, s.refreshStats) })
	wg.Go(func() { s.every(bgCtx, s.cfg.TrimInterval, s.trimJournal) })
	wg.Go(func() { s.every(bgCtx, s.cfg.TrimInterval, s.cleanSessions) })
	defer func() { stopBG(); wg.Wait() }()

	s.log.Info("listening", "addr", ln.Addr().String(), "url", s.cfg.URL, "name", s.cfg.Name)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("hub serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
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
