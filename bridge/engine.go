package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/scim/client"
)

// Config configures an Engine. Target, Records and State are required.
type Config struct {
	Target  Target
	Records Records
	State   State
	Logger  *slog.Logger
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
	// Registerer receives the engine's metrics (default: a private registry).
	Registerer prometheus.Registerer
	// Owner names this replica in task locks (default host, pid and a random
	// suffix).
	Owner string
	// NewSource opens the source of a server (default: a SCIMSource over
	// scim/client with HTTPClient).
	NewSource func(Server) (Source, error)
	// HTTPClient is used by the default sources (default: scim/client's
	// keep-alive transport).
	HTTPClient *http.Client
	// ClientConfig, when set, adjusts the scim/client configuration of every
	// default source (timeouts, retries).
	ClientConfig func(*client.Config)
	// LockTTL is the task lock lease (default 2 minutes, renewed every third).
	LockTTL time.Duration
	// PageSize is the page size asked of sources and used for local batches
	// (default 500).
	PageSize int
	// ChangesPerRun bounds how many feed pages an incremental run reads before it
	// commits and returns (default 40).
	ChangesPerRun int
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Target == nil {
		errs = append(errs, errors.New("bridge: Target (the local directory) is required"))
	}
	if c.Records == nil {
		errs = append(errs, fmt.Errorf("bridge: Records is required: %w", ErrNoRecords))
	}
	if c.State == nil {
		errs = append(errs, errors.New("bridge: State is required"))
	}
	if c.LockTTL < 0 || c.PageSize < 0 || c.ChangesPerRun < 0 {
		errs = append(errs, errors.New("bridge: LockTTL, PageSize and ChangesPerRun must not be negative"))
	}
	return errors.Join(errs...)
}

// Engine runs sync tasks. It is safe for concurrent use; each (server, task)
// runs at most once at a time across every replica sharing its State.
type Engine struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	srcMu   sync.Mutex
	sources map[string]cachedSource
}

type cachedSource struct {
	srv Server
	src Source
}

// New validates cfg and returns an engine.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Owner == "" {
		cfg.Owner = DefaultOwner()
	}
	if cfg.LockTTL == 0 {
		cfg.LockTTL = 2 * time.Minute
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 500
	}
	cfg.PageSize = min(cfg.PageSize, 1000)
	if cfg.ChangesPerRun == 0 {
		cfg.ChangesPerRun = 40
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("bridge metrics: %w", err)
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, m: m, sources: map[string]cachedSource{}}
	if e.cfg.NewSource == nil {
		e.cfg.NewSource = e.scimSource
	}
	return e, nil
}

// DefaultOwner returns a lock owner id unique to this process.
func DefaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (e *Engine) scimSource(s Server) (Source, error) {
	cc := client.Config{
		BaseURL:    s.URL,
		Token:      s.Token,
		HTTPClient: e.cfg.HTTPClient,
		PageSize:   e.cfg.PageSize,
		UserAgent:  "connect-bridge",
		Logger:     e.log.With("server", s.ID),
		OnAttempt:  e.m.observe(s.ID),
	}
	if e.cfg.ClientConfig != nil {
		e.cfg.ClientConfig(&cc)
	}
	c, err := client.New(cc)
	if err != nil {
		return nil, err
	}
	return NewSCIMSource(c), nil
}

// source returns the (cached) source of s, rebuilt when s changed.
func (e *Engine) source(s Server) (Source, error) {
	e.srcMu.Lock()
	defer e.srcMu.Unlock()
	if c, ok := e.sources[s.ID]; ok && c.srv.URL == s.URL && c.srv.Token == s.Token {
		// Same endpoint and credentials: keep the client (and its pooled
		// connections); a changed token or URL makes a new one.
		return c.src, nil
	}
	src, err := e.cfg.NewSource(s)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", s, err)
	}
	e.sources[s.ID] = cachedSource{srv: s, src: src}
	return src, nil
}

func (e *Engine) now() time.Time { return e.cfg.Clock().UTC() }

// Servers returns the connected servers.
func (e *Engine) Servers(ctx context.Context) ([]Server, error) {
	return ListServers(ctx, e.cfg.Records)
}

// Settings returns the current settings.
func (e *Engine) Settings(ctx context.Context) (Settings, error) {
	return LoadSettings(ctx, e.cfg.Records)
}

// RunOptions tune one run.
type RunOptions struct {
	// Full forces a full reconcile.
	Full bool
	// DryRun plans without writing anything (no local writes, no state writes,
	// no lock).
	DryRun bool
	// Wait long-polls the Changes feed this long when nothing is pending.
	Wait time.Duration
	// Progress, when set, is called as pages are processed.
	Progress func(Progress)

	// approvedOnly applies an approved plan and nothing else.
	approvedOnly bool
}

// Progress reports how a run advances.
type Progress struct {
	Server, Task string
	// Done is how many resources were processed; Total the source's count when
	// known (-1 otherwise).
	Done, Total int
}

// RunTask runs one task of the server ref (id or name) now and returns its plan.
// A held plan is returned with a nil error; ErrBusy when another replica runs
// the task. The plan is stored as the task's plan (except on a dry run).
func (e *Engine) RunTask(ctx context.Context, ref, task string, opts RunOptions) (*Plan, error) {
	srv, err := FindServer(ctx, e.cfg.Records, ref)
	if err != nil {
		return nil, err
	}
	return e.runTask(ctx, srv, task, opts)
}

func (e *Engine) runTask(ctx context.Context, srv Server, task string, opts RunOptions) (*Plan, error) {
	switch task {
	case TaskUsers, TaskCollections, TaskCleanup:
	default:
		return nil, fmt.Errorf("unknown task %q (want users, collections or cleanup)", task)
	}
	settings, err := LoadSettings(ctx, e.cfg.Records)
	if err != nil {
		return nil, err
	}
	start := e.cfg.Clock()
	r := &run{e: e, srv: srv, task: task, opts: opts, set: settings, dry: opts.DryRun, fields: storable(e.cfg.Target)}
	if !opts.DryRun {
		lease, err := e.cfg.State.Acquire(ctx, srv.ID, task, e.cfg.Owner, e.cfg.LockTTL)
		if errors.Is(err, state.ErrLocked) {
			e.m.runs.WithLabelValues(srv.ID, task, "busy").Inc()
			return nil, fmt.Errorf("%s %s: %w", srv, task, ErrBusy)
		}
		if err != nil {
			e.stateErr("acquire", err)
			return nil, fmt.Errorf("%s %s: lock: %w", srv, task, err)
		}
		r.fence = lease.Fence()
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		done := make(chan struct{})
		go e.keepLease(ctx, srv, lease, cancel, done)
		defer func() {
			close(done)
			cancel(nil)
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := e.cfg.State.Release(rctx, srv.ID, lease); err != nil && !errors.Is(err, state.ErrLockLost) {
				e.stateErr("release", err)
				e.log.Warn("release task lock", "server", srv.ID, "task", task, "err", err)
			}
			rcancel()
		}()
	}
	if r.src, err = e.source(srv); err != nil {
		return nil, err
	}

	var plan *Plan
	switch task {
	case TaskUsers:
		plan, err = r.users(ctx)
	case TaskCollections:
		plan, err = r.collections(ctx)
	case TaskCleanup:
		plan, err = r.cleanup(ctx)
	}
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%w (%w)", err, cause)
	}
	if plan == nil {
		plan = newPlan(srv.ID, task, "none", e.now())
	}
	plan.Duration = e.cfg.Clock().Sub(start)
	e.finish(ctx, r, plan, err)
	return plan, err
}

// keepLease renews the lease every third of its TTL and cancels the run when
// the lease is lost (another replica took the lock: this one must stop writing).
func (e *Engine) keepLease(ctx context.Context, srv Server, l state.Lease, cancel context.CancelCauseFunc, done <-chan struct{}) {
	t := time.NewTicker(e.cfg.LockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			err := e.cfg.State.Renew(ctx, srv.ID, l, e.cfg.LockTTL)
			if errors.Is(err, state.ErrLockLost) {
				e.log.Error("task lock lost; stopping the run", "server", srv.ID, "task", l.Task)
				cancel(fmt.Errorf("task lock lost: %w", state.ErrLockLost))
				return
			}
			if err != nil {
				// A blip: the next renewal (or a fenced write) decides.
				e.stateErr("renew", err)
				e.log.Warn("renew task lock", "server", srv.ID, "task", l.Task, "err", err)
			}
		}
	}
}

func (e *Engine) stateErr(op string, err error) {
	if err != nil && !errors.Is(err, state.ErrLockLost) && !errors.Is(err, state.ErrLocked) && !errors.Is(err, state.ErrNotFound) {
		e.m.stateErrors.WithLabelValues(op).Inc()
	}
}

// finish records the run: the stored plan, metrics, logs.
func (e *Engine) finish(ctx context.Context, r *run, p *Plan, runErr error) {
	srv, task := r.srv.ID, r.task
	result := "ok"
	switch {
	case r.dry:
		p.Status = StatusDryRun
		result = "dry-run"
	case runErr != nil && !p.Held():
		p.Status = StatusFailed
		p.Reasons = append(p.Reasons, runErr.Error())
		result = "failed"
	case p.Held():
		result = "held"
	default:
		p.Status = string(state.PlanApplied)
	}
	itemResult := "applied"
	if r.dry {
		itemResult = "planned"
	}
	for a, n := range p.Counts {
		failed := p.Failed[a]
		held := 0
		if p.Held() {
			for _, it := range p.Items {
				if it.Action == a && it.Destructive && !it.Done {
					held++
				}
			}
		}
		if ok := n - failed - held; ok > 0 {
			e.m.items.WithLabelValues(srv, task, string(a), itemResult).Add(float64(ok))
		}
		if failed > 0 {
			e.m.items.WithLabelValues(srv, task, string(a), "failed").Add(float64(failed))
		}
		if held > 0 {
			e.m.items.WithLabelValues(srv, task, string(a), "held").Add(float64(held))
		}
	}
	e.m.runs.WithLabelValues(srv, task, result).Inc()
	e.m.duration.WithLabelValues(task, p.Mode).Observe(p.Duration.Seconds())
	if r.dry {
		return
	}
	if result == "ok" || result == "held" {
		e.m.lastSuccess.WithLabelValues(srv, task).Set(float64(e.cfg.Clock().Unix()))
	}
	heldGauge := 0.0
	if p.Held() {
		heldGauge = 1
	}
	// A failed run before the plan took shape keeps the stored plan (a held plan
	// must not be replaced by a failure that planned nothing).
	if runErr == nil || p.Total() > 0 || p.Held() {
		if err := r.savePlan(context.WithoutCancel(ctx), p); err != nil {
			e.log.Warn("store plan", "server", srv, "task", task, "err", err)
		} else {
			e.m.held.WithLabelValues(srv, task).Set(heldGauge)
		}
	}
	attrs := []any{"server", srv, "task", task, "mode", p.Mode, "plan", p.ID, "status", p.Status,
		"summary", p.Summary(), "duration", p.Duration.Round(time.Millisecond)}
	switch {
	case runErr != nil:
		e.log.Error("sync run failed", append(attrs, "err", runErr)...)
	case p.Held():
		e.log.Warn("sync plan held for approval", append(attrs, "reasons", p.Reasons)...)
	case p.Total() > 0:
		e.log.Info("sync run", attrs...)
	default:
		e.log.Debug("sync run", attrs...)
	}
}

// Metrics exposes nothing; the registerer given in Config holds the series.

// Plans returns the stored plans of a server (every task).
func (e *Engine) Plans(ctx context.Context, ref string) ([]*Plan, error) {
	srv, err := FindServer(ctx, e.cfg.Records, ref)
	if err != nil {
		return nil, err
	}
	sps, err := e.cfg.State.Plans(ctx, srv.ID)
	if err != nil {
		return nil, err
	}
	out := make([]*Plan, 0, len(sps))
	for _, sp := range sps {
		p, err := DecodePlan(sp)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// DecidePlan approves or rejects the held plan id of (server, task). An
// approved plan's destructive items are applied by ApplyApproved (or the next
// run of the task); a rejected plan is dropped (a later full reconcile plans
// what is still true).
func (e *Engine) DecidePlan(ctx context.Context, ref, task, id string, approve bool) (*Plan, error) {
	srv, err := FindServer(ctx, e.cfg.Records, ref)
	if err != nil {
		return nil, err
	}
	sp, err := e.cfg.State.GetPlan(ctx, srv.ID, task)
	if errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("%w for %s %s", ErrNoPlan, srv, task)
	}
	if err != nil {
		return nil, err
	}
	if sp.ID != id {
		return nil, fmt.Errorf("plan %s is not the stored plan of %s %s (now %s): review it again: %w", id, srv, task, sp.ID, state.ErrConflict)
	}
	if sp.Status != state.PlanHeld {
		return nil, fmt.Errorf("plan %s is %s, not held: %w", id, sp.Status, ErrNoPlan)
	}
	status := state.PlanRejected
	if approve {
		status = state.PlanApproved
	}
	if err := e.cfg.State.SetPlanStatus(ctx, srv.ID, task, id, status, e.now()); err != nil {
		return nil, err
	}
	e.m.held.WithLabelValues(srv.ID, task).Set(0)
	sp.Status = status
	return DecodePlan(sp)
}

// ApplyApproved applies the approved plan of (server, task) now, under the task
// lock. It returns ErrBusy when the task is running elsewhere (that run applies
// it) and ErrNoPlan when no approved plan waits.
func (e *Engine) ApplyApproved(ctx context.Context, ref, task string) (*Plan, error) {
	srv, err := FindServer(ctx, e.cfg.Records, ref)
	if err != nil {
		return nil, err
	}
	sp, err := e.cfg.State.GetPlan(ctx, srv.ID, task)
	if errors.Is(err, state.ErrNotFound) || (err == nil && sp.Status != state.PlanApproved) {
		return nil, fmt.Errorf("%w approved for %s %s", ErrNoPlan, srv, task)
	}
	if err != nil {
		return nil, err
	}
	return e.runTask(ctx, srv, task, RunOptions{approvedOnly: true})
}
