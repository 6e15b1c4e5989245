package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/sso"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/internal/gctune"
)

// Bridge flag names; each has the environment variable CONNECT_BRIDGE_<NAME>
// and the YAML key <name> in the --config file.
const (
	flagRecords    = "records"
	flagStoreToken = "store-token"
	flagRedis      = "redis"

	defaultBridgeStore  = "sqlite:connect-bridge.db"
	defaultBridgeListen = "127.0.0.1:8081"

	// exitHeld is the exit code of `bridge sync` when a plan was held.
	exitHeld = 3
)

func bridgeEnv(name string) []string {
	return []string{"CONNECT_BRIDGE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

// bridgeStoreFlags are the flags every bridge command takes: admin commands
// open the same stores as the server they administer.
func bridgeStoreFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagConfig, Usage: "YAML file with settings (keys are the flag names)", EnvVars: bridgeEnv(flagConfig), TakesFile: true},
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagStore, Usage: "local directory DSN: sqlite:PATH, postgres://… or scim+https://HOST/PATH (a site's SCIM endpoint)", Value: defaultBridgeStore, EnvVars: bridgeEnv(flagStore)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagRecords, Usage: "where the bridge keeps its servers and settings when --store cannot (a SCIM target): sqlite:PATH or postgres://…", EnvVars: bridgeEnv(flagRecords)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagStoreToken, Usage: "bearer token of a SCIM target --store", EnvVars: bridgeEnv(flagStoreToken)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagRedis, Usage: "state: redis://HOST:PORT/DB (shared by replicas); absent: task locks and plans in the local store, the rest in-process (one replica)", EnvVars: bridgeEnv(flagRedis)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagLogFormat, Usage: "log format: text or json", Value: "text", EnvVars: bridgeEnv(flagLogFormat)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagLogLevel, Usage: "log level: debug, info, warn or error", Value: "info", EnvVars: bridgeEnv(flagLogLevel)}),
	}
}

func bridgeServeFlags() []cli.Flag {
	return append(append(bridgeStoreFlags(),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagListen, Usage: "address to listen on (host:port; port 0 picks one)", Value: defaultBridgeListen, EnvVars: bridgeEnv(flagListen)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagURL, Usage: "public base URL of the bridge (default: http://LISTEN when listening on loopback)", EnvVars: bridgeEnv(flagURL)}),
	), append(bridgeSSOFlags(), gcFlags(sso.DefaultGCPercent, sso.DefaultMemoryLimit, bridgeEnv)...)...)
}

// bridgeOptions are the flag values of a bridge command.
type bridgeOptions struct {
	store, records, storeToken, redis string
	listen, url                       string
	log                               *slog.Logger
	// gc is the collector tuning of `bridge serve` and `bridge sync`
	// (--gc-percent, --memory-limit); zero for commands without the flags.
	gc gctune.Settings
}

// loadBridgeOptions reads and checks the flags, reporting every problem at once.
func loadBridgeOptions(c *cli.Context, serve bool) (bridgeOptions, error) {
	o := bridgeOptions{store: c.String(flagStore), records: c.String(flagRecords),
		storeToken: c.String(flagStoreToken), redis: c.String(flagRedis)}
	var errs []error
	log, err := newLogger(c.App.ErrWriter, c.String(flagLogFormat), c.String(flagLogLevel))
	if err != nil {
		errs = append(errs, err)
	}
	o.log = log
	if err := checkBridgeStores(o.store, o.records, o.storeToken, o.redis); err != nil {
		errs = append(errs, unjoin(err)...)
	}
	gc, gcErrs := loadGCSettings(c)
	o.gc, errs = gc, append(errs, gcErrs...)
	if serve {
		o.listen, o.url = c.String(flagListen), c.String(flagURL)
		if _, _, err := net.SplitHostPort(o.listen); err != nil {
			errs = append(errs, fmt.Errorf("listen %q: want host:port", o.listen))
		}
		if o.url == "" && isLoopback(o.listen) {
			o.url = "http://" + o.listen
		}
		if o.url == "" {
			errs = append(errs, errors.New("url: required when not listening on loopback"))
		} else if _, err := bridge.NormalizeSCIMURL(o.url); err != nil {
			errs = append(errs, fmt.Errorf("url: %w", err))
		}
	}
	return o, errors.Join(errs...)
}

func bridgeCommand() *cli.Command {
	store := func(cmd *cli.Command) *cli.Command {
		cmd.Flags = append(bridgeStoreFlags(), cmd.Flags...)
		return withConfigFile(cmd)
	}
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	serverFlag := &cli.StringFlag{Name: "server", Usage: "server id or name (default: every server)"}
	taskFlag := &cli.StringFlag{Name: "task", Usage: "users, collections or cleanup (default: all)"}
	return &cli.Command{
		Name:  "bridge",
		Usage: "run and administer a bridge (sync from hubs into the site's local directory)",
		Subcommands: []*cli.Command{
			withConfigFile(&cli.Command{Name: "serve", Usage: "run the bridge: sync tasks on their schedules, /healthz, /readyz, /metrics",
				Flags: bridgeServeFlags(), Action: bridgeServe}),
			withConfigFile(&cli.Command{Name: "check-config", Usage: "validate the settings and reach the stores without serving",
				Flags: bridgeServeFlags(), Action: bridgeCheckConfig}),
			store(&cli.Command{Name: "sync", Usage: "run tasks now and print the plan",
				Flags: append([]cli.Flag{serverFlag, taskFlag,
					&cli.BoolFlag{Name: "full", Usage: "full reconcile (list everything)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "plan only: write nothing"},
					jsonFlag,
					&cli.BoolFlag{Name: "no-progress", Usage: "do not draw the progress bar"}},
					gcFlags(syncGCPercent, sso.DefaultMemoryLimit, bridgeEnv)...),
				Action: bridgeSync}),
			{Name: "servers", Usage: "hubs and SCIM servers this bridge syncs from", Subcommands: []*cli.Command{
				store(bridgeServersConnectCommand()),
				store(&cli.Command{Name: "add-manual", Usage: "add a source without the handshake (any SCIM 2.0 server); prints the server id",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "name", Usage: "display name", Required: true},
						&cli.StringFlag{Name: "url", Usage: "the hub's URL or a SCIM base URL (…/scim/v2)", Required: true},
						&cli.StringFlag{Name: "token", Usage: "bearer token (a read-only hub token)", EnvVars: []string{"CONNECT_BRIDGE_SERVER_TOKEN"}, Required: true},
					}, Action: bridgeServersAdd}),
				store(&cli.Command{Name: "list", Usage: "list servers (never their tokens)", Flags: []cli.Flag{jsonFlag}, Action: bridgeServersList}),
				store(&cli.Command{Name: "refresh-metadata", Usage: "fetch the hubs' SAML metadata now (serve does it every 10 minutes)",
					Flags:  []cli.Flag{&cli.BoolFlag{Name: "trust-new", Usage: "re-pin without checking it is signed by a pinned key (after a bridge missed a whole key rollover)"}},
					Action: bridgeServersRefreshMetadata}),
				store(&cli.Command{Name: "set-token", Usage: "replace a server's token (after `connect hub clients rotate-token`); reads it from stdin", ArgsUsage: "ID|NAME", Action: bridgeServersSetToken}),
				store(&cli.Command{Name: "remove", Usage: "forget a server and its sync state; a hub is told, and the removal action applies to its accounts", ArgsUsage: "ID|NAME", Action: bridgeServersRemove}),
			}},
			{Name: "plans", Usage: "stored and held plans", Subcommands: []*cli.Command{
				store(&cli.Command{Name: "show", Usage: "print the last plan of each task", Flags: []cli.Flag{serverFlag, taskFlag, jsonFlag}, Action: bridgePlansShow}),
				store(&cli.Command{Name: "approve", Usage: "approve a held plan and apply it now (or on the task's next run)", ArgsUsage: "PLAN_ID",
					Flags: []cli.Flag{serverFlag, taskFlag}, Action: func(c *cli.Context) error { return bridgePlanDecide(c, true) }}),
				store(&cli.Command{Name: "reject", Usage: "reject a held plan", ArgsUsage: "PLAN_ID",
					Flags: []cli.Flag{serverFlag, taskFlag}, Action: func(c *cli.Context) error { return bridgePlanDecide(c, false) }}),
			}},
			store(&cli.Command{Name: "why", Usage: "explain a local account's state (the rule chain)", ArgsUsage: "USERNAME", Flags: []cli.Flag{jsonFlag}, Action: bridgeWhy}),
			{Name: "users", Usage: "local accounts", Subcommands: []*cli.Command{
				store(&cli.Command{Name: "list", Usage: "list local accounts", Flags: []cli.Flag{jsonFlag}, Action: bridgeUsersList}),
			}},
			{Name: "groups", Usage: "local groups", Subcommands: []*cli.Command{
				store(&cli.Command{Name: "list", Usage: "list local groups", Flags: []cli.Flag{jsonFlag}, Action: bridgeGroupsList}),
			}},
			{Name: "settings", Usage: "bridge settings (" + bridgeSettingKeys() + ")", Subcommands: []*cli.Command{
				store(&cli.Command{Name: "get", Usage: "print settings (all, or the named ones)", ArgsUsage: "[KEY…]", Action: bridgeSettingsGet}),
				store(&cli.Command{Name: "set", Usage: "change settings; a running bridge sees the change at its next run", ArgsUsage: "KEY=VALUE…", Action: bridgeSettingsSet}),
			}},
		},
	}
}

func bridgeSettingKeys() string {
	var ks []string
	for _, s := range bridge.SettingKeys() {
		ks = append(ks, s.Key)
	}
	return strings.Join(ks, ", ")
}

// adminBridge opens the stores of an admin command.
func adminBridge(c *cli.Context, withState bool) (*bridgeStores, bridgeOptions, error) {
	o, err := loadBridgeOptions(c, false)
	if err != nil {
		return nil, o, err
	}
	s, err := openBridgeStores(c.Context, o, withState)
	return s, o, err
}

func newBridgeEngine(s *bridgeStores, log *slog.Logger, reg prometheus.Registerer) (*bridge.Engine, error) {
	return bridge.New(bridge.Config{Target: s.dir, Records: s.records, State: s.state, Logger: log, Registerer: reg})
}

func bridgeServe(c *cli.Context) error {
	o, err := loadBridgeOptions(c, true)
	if err != nil {
		return err
	}
	defer o.gc.Apply()()
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	if c.String(flagURL) == "" && isLoopback(o.listen) {
		o.url = "http://" + ln.Addr().String()
	}
	s, err := openBridgeStores(c.Context, o, true)
	if err != nil {
		return err
	}
	defer s.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	eng, err := newBridgeEngine(s, o.log, reg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.dir.Ping(ctx); err != nil {
			o.log.Warn("readiness: local directory unreachable", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "local directory unavailable\n")
			return
		}
		if err := s.state.Ping(ctx); err != nil {
			o.log.Warn("readiness: state unreachable", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "state unavailable\n")
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelError)}))
	ssoBridge, err := newBridgeSSO(c, o, s, eng, reg)
	if err != nil {
		return err
	}
	mux.Handle("/", ssoBridge.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelWarn)}

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	done := make(chan error, 2)
	go func() { done <- eng.Serve(ctx, 5*time.Second) }()
	go refreshHubMetadata(ctx, s.records, o.log, metadataRefreshEvery)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			done <- err
			return
		}
		done <- nil
	}()
	o.log.Info("bridge serving", "listen", ln.Addr().String(), "url", o.url, "store", redactDSN(o.store), "state", stateName(o.redis))
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-done:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return runErr
}

func stateName(redis string) string {
	if redis == "" {
		return "in-process (task locks and plans in the store)"
	}
	return redactDSN(redis)
}

func bridgeCheckConfig(c *cli.Context) error {
	o, err := loadBridgeOptions(c, true)
	if err != nil {
		return err
	}
	s, err := openBridgeStores(c.Context, o, true)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
	defer cancel()
	var errs []error
	if err := s.dir.Ping(ctx); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	if err := s.state.Ping(ctx); err != nil {
		errs = append(errs, fmt.Errorf("redis: %w", err))
	}
	servers, err := bridge.ListServers(ctx, s.records)
	if err != nil {
		errs = append(errs, err)
	}
	if _, err := bridge.LoadSettings(ctx, s.records); err != nil {
		errs = append(errs, fmt.Errorf("settings: %w", err))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	w := c.App.Writer
	fmt.Fprintln(w, "configuration OK")
	fmt.Fprintf(w, "  listen   %s\n  url      %s\n  store    %s\n  state    %s\n  servers  %d\n", o.listen, o.url, redactDSN(o.store), stateName(o.redis), len(servers))
	return nil
}

// selectServers returns the servers a --server flag names (all when empty).
func selectServers(c *cli.Context, recs bridge.Records) ([]bridge.Server, error) {
	if ref := c.String("server"); ref != "" {
		s, err := bridge.FindServer(c.Context, recs, ref)
		if err != nil {
			return nil, err
		}
		return []bridge.Server{s}, nil
	}
	ss, err := bridge.ListServers(c.Context, recs)
	if err == nil && len(ss) == 0 {
		err = errors.New("no servers: add one with `connect bridge servers add-manual` or `connect bridge servers connect`")
	}
	return ss, err
}

func selectTasks(c *cli.Context) ([]string, error) {
	t := c.String("task")
	if t == "" {
		return bridge.Tasks, nil
	}
	for _, k := range bridge.Tasks {
		if k == t {
			return []string{t}, nil
		}
	}
	return nil, fmt.Errorf("--task %q: want users, collections or cleanup", t)
}

// syncGCPercent is the default GOGC of `bridge sync` (--gc-percent), under
// the serving bridge's soft memory limit (sso.DefaultMemoryLimit). An initial
// sync of 100,000 users allocates ~2 GB around a live heap of ~20 MB: at GOGC
// 100 the collector takes about a tenth of the sync's CPU; 200 saves most of
// that (process CPU 5.9 → 5.45 s, ratio to fetch+decode 1.65 → 1.56) at
// ~100 MB peak RSS, where 400 saves 0.35 s more but peaks at 137 MB against
// the 150 MB budget (docs/benchmarks.md, "Bridge").
const syncGCPercent = 200

func bridgeSync(c *cli.Context) error {
	s, o, err := adminBridge(c, true)
	if err != nil {
		return err
	}
	defer s.Close()
	defer o.gc.Apply()()
	tasks, err := selectTasks(c)
	if err != nil {
		return err
	}
	servers, err := selectServers(c, s.records)
	if err != nil {
		return err
	}
	eng, err := newBridgeEngine(s, o.log, nil)
	if err != nil {
		return err
	}
	var plans []*bridge.Plan
	var errs []error
	held := 0
	for _, srv := range servers {
		for _, task := range tasks {
			var bar *progressbar.ProgressBar
			opts := bridge.RunOptions{Full: c.Bool("full"), DryRun: c.Bool("dry-run")}
			if !c.Bool("no-progress") && !c.Bool("json") {
				opts.Progress = func(p bridge.Progress) {
					if bar == nil {
						bar = progressbar.NewOptions(p.Total,
							progressbar.OptionSetWriter(c.App.ErrWriter),
							progressbar.OptionSetDescription(fmt.Sprintf("%s %s", srv.Name, task)),
							progressbar.OptionShowCount(),
							progressbar.OptionThrottle(100*time.Millisecond),
							progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.App.ErrWriter) }))
					}
					_ = bar.Set(p.Done)
				}
			}
			p, err := eng.RunTask(c.Context, srv.ID, task, opts)
			if bar != nil {
				_ = bar.Finish()
			}
			if p != nil {
				plans = append(plans, p)
				if p.Held() {
					held++
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", srv, task, err))
			}
		}
	}
	if err := printPlans(c, plans); err != nil {
		return err
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if held > 0 {
		return cli.Exit(fmt.Sprintf("%d plan(s) held for approval: review with `connect bridge plans show`, then `connect bridge plans approve PLAN_ID`", held), exitHeld)
	}
	return nil
}

func printPlans(c *cli.Context, plans []*bridge.Plan) error {
	w := c.App.Writer
	if c.Bool("json") {
		if plans == nil {
			plans = []*bridge.Plan{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(plans)
	}
	for i, p := range plans {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := p.WriteTableN(w, 50); err != nil {
			return err
		}
	}
	return nil
}

func bridgeServersAdd(c *cli.Context) error {
	s, _, err := adminBridge(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	srv, err := bridge.AddServer(c.Context, s.records, c.String("name"), c.String("url"), c.String("token"), time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.Writer, srv.ID)
	return err
}

func bridgeServersList(c *cli.Context) error {
	s, _, err := adminBridge(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	ss, err := bridge.ListServers(c.Context, s.records)
	if err != nil {
		return err
	}
	type row struct {
		ID     string    `json:"id"`
		Name   string    `json:"name"`
		URL    string    `json:"url"`
		Manual bool      `json:"manual"`
		Added  time.Time `json:"added"`
	}
	rows := make([]row, 0, len(ss))
	for _, sv := range ss {
		rows = append(rows, row{sv.ID, sv.Name, sv.URL, sv.Manual, sv.Added})
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(rows)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tURL\tMANUAL\tADDED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", r.ID, r.Name, r.URL, r.Manual, r.Added.Format(time.RFC3339))
	}
	return tw.Flush()
}

func bridgeServersRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("servers remove: give the server's id or name")
	}
	s, o, err := adminBridge(c, true)
	if err != nil {
		return err
	}
	defer s.Close()
	srv, err := bridge.FindServer(c.Context, s.records, c.Args().First())
	if err != nil {
		return err
	}
	eng, err := newBridgeEngine(s, o.log, nil)
	if err != nil {
		return err
	}
	if err := removeHubServer(c.Context, c.App.ErrWriter, o.log, eng, srv); err != nil {
		return err
	}
	if _, err := bridge.RemoveServer(c.Context, s.records, s.state, srv.ID); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "removed %s\n", srv)
	return nil
}

func bridgePlansShow(c *cli.Context) error {
	s, o, err := adminBridge(c, true)
	if err != nil {
		return err
	}
	defer s.Close()
	servers, err := selectServers(c, s.records)
	if err != nil {
		return err
	}
	eng, err := newBridgeEngine(s, o.log, nil)
	if err != nil {
		return err
	}
	task := c.String("task")
	var out []*bridge.Plan
	for _, srv := range servers {
		ps, err := eng.Plans(c.Context, srv.ID)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if task == "" || p.Task == task {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 && !c.Bool("json") {
		fmt.Fprintln(c.App.Writer, "no stored plans")
		return nil
	}
	return printPlans(c, out)
}

func bridgePlanDecide(c *cli.Context, approve bool) error {
	verb := map[bool]string{true: "approve", false: "reject"}[approve]
	if c.NArg() != 1 {
		return fmt.Errorf("plans %s: give the plan id (from `connect bridge plans show`)", verb)
	}
	id := c.Args().First()
	s, o, err := adminBridge(c, true)
	if err != nil {
		return err
	}
	defer s.Close()
	eng, err := newBridgeEngine(s, o.log, nil)
	if err != nil {
		return err
	}
	servers, err := selectServers(c, s.records)
	if err != nil {
		return err
	}
	// Find the held plan with that id.
	var srv bridge.Server
	task := c.String("task")
	found := false
	for _, sv := range servers {
		ps, err := eng.Plans(c.Context, sv.ID)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.ID == id && (task == "" || p.Task == task) {
				srv, task, found = sv, p.Task, true
			}
		}
	}
	if !found {
		return fmt.Errorf("plans %s: no stored plan %s (it may have been replaced by a newer run: check `connect bridge plans show`)", verb, id)
	}
	if _, err := eng.DecidePlan(c.Context, srv.ID, task, id, approve); err != nil {
		return err
	}
	if !approve {
		fmt.Fprintf(c.App.Writer, "plan %s rejected\n", id)
		return nil
	}
	p, err := eng.ApplyApproved(c.Context, srv.ID, task)
	switch {
	case errors.Is(err, bridge.ErrBusy):
		fmt.Fprintf(c.App.Writer, "plan %s approved; the running bridge applies it at its next %s run\n", id, task)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(c.App.Writer, "plan %s approved and applied\n", id)
	return p.WriteTable(c.App.Writer)
}

func bridgeWhy(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("why: give a local username")
	}
	s, o, err := adminBridge(c, true)
	if err != nil {
		return err
	}
	defer s.Close()
	eng, err := newBridgeEngine(s, o.log, nil)
	if err != nil {
		return err
	}
	a, chain, err := eng.Why(c.Context, c.Args().First())
	if errors.Is(err, local.ErrNotFound) {
		return fmt.Errorf("no local account named %q", c.Args().First())
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(map[string]any{"username": a.Username, "chain": chain})
	}
	tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\n", a.Username)
	for _, r := range chain {
		fmt.Fprintf(tw, "  %s\t%s\n", r.Rule, r.Detail)
	}
	return tw.Flush()
}

// userRow is one line of `bridge users list --json` (DESIGN.md §2.1).
type userRow struct {
	Username   string   `json:"username"`
	Auth       string   `json:"auth"`
	Server     string   `json:"server"`
	HubUserID  string   `json:"hubUserId"`
	Email      string   `json:"email"`
	GivenName  string   `json:"givenName"`
	FamilyName string   `json:"familyName"`
	IDNumber   string   `json:"idNumber"`
	Suspended  bool     `json:"suspended"`
	Deleted    bool     `json:"deleted"`
	Groups     []string `json:"groups"`
}

func bridgeUsersList(c *cli.Context) error {
	s, _, err := adminBridge(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	names := map[string]string{}
	groupName := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		g, err := s.dir.Group(c.Context, id)
		n := id
		if err == nil {
			n = g.Name
		}
		names[id] = n
		return n
	}
	rows := []userRow{}
	q := local.AccountQuery{Deleted: local.DeletedInclude, Limit: local.MaxBatch}
	for {
		as, next, err := s.dir.ListAccounts(c.Context, q)
		if err != nil {
			return err
		}
		for _, a := range as {
			gids, err := s.dir.AccountGroups(c.Context, a.ID)
			if err != nil {
				return err
			}
			gs := []string{}
			for _, id := range gids {
				gs = append(gs, groupName(id))
			}
			sort.Strings(gs)
			rows = append(rows, userRow{a.Username, string(a.Auth), a.Server, a.HubUserID, a.Email, a.GivenName,
				a.FamilyName, a.IDNumber, a.Suspended, a.IsDeleted(), gs})
		}
		if next == "" {
			break
		}
		q.After = next
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(rows)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tAUTH\tSERVER\tEMAIL\tNAME\tSTATUS\tGROUPS")
	for _, r := range rows {
		status := "active"
		switch {
		case r.Deleted:
			status = "deleted"
		case r.Suspended:
			status = "suspended"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Username, r.Auth, dash(r.Server), dash(r.Email),
			strings.TrimSpace(r.GivenName+" "+r.FamilyName), status, strings.Join(r.Groups, ", "))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// groupRow is one line of `bridge groups list --json` (DESIGN.md §2.1).
type groupRow struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"`
	Server     string   `json:"server"`
	HubGroupID string   `json:"hubGroupId"`
	Locked     bool     `json:"locked"`
	Members    []string `json:"members"`
}

func bridgeGroupsList(c *cli.Context) error {
	s, _, err := adminBridge(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	usernames := map[string]string{}
	rows := []groupRow{}
	q := local.GroupQuery{Limit: local.MaxBatch}
	for {
		gs, next, err := s.dir.ListGroups(c.Context, q)
		if err != nil {
			return err
		}
		for _, g := range gs {
			members := []string{}
			after := ""
			for {
				ids, nx, err := s.dir.GroupMembers(c.Context, g.ID, after, local.MaxBatch)
				if err != nil {
					return err
				}
				for _, id := range ids {
					n, ok := usernames[id]
					if !ok {
						a, err := s.dir.Account(c.Context, id)
						if err != nil {
							return err
						}
						n = a.Username
						usernames[id] = n
					}
					members = append(members, n)
				}
				if nx == "" {
					break
				}
				after = nx
			}
			sort.Strings(members)
			rows = append(rows, groupRow{g.Name, string(g.Kind), g.Server, g.HubGroupID, g.Locked, members})
		}
		if next == "" {
			break
		}
		q.After = next
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(rows)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSERVER\tLOCKED\tMEMBERS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\n", r.Name, r.Kind, dash(r.Server), r.Locked, len(r.Members))
	}
	return tw.Flush()
}

func bridgeSettingsGet(c *cli.Context) error {
	s, _, err := adminBridge(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	set, err := bridge.LoadSettings(c.Context, s.records)
	if err != nil {
		return err
	}
	keys := c.Args().Slice()
	if len(keys) == 0 {
		for _, si := range bridge.SettingKeys() {
			keys = append(keys, si.Key)
		}
	}
	for _, k := range keys {
		v, err := set.Get(k)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "%s=%s\n", k, v)
	}
	return nil
}

func bridgeSettingsSet(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("settings set: give KEY=VALUE (keys: " + bridgeSettingKeys() + ")")
	}
	kv := map[string]string{}
	var errs []error
	for _, a := range c.Args().Slice() {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("%q: want KEY=VALUE", a))
			continue
		}
		kv[strings.TrimSpace(k)] = v
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s, _, err := adminBridge(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	return bridge.SaveSettings(c.Context, s.records, kv)
}

// The state contract is what the engine's State interface needs.
var _ bridge.State = state.State(nil)
