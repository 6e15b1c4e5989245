package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	users       int
	runs        int
	duration    time.Duration
	warmup      time.Duration
	conc        int
	pageConc    int
	rate        float64
	openWorkers int
	patches     int
	polls       int
	importRows  int
	bin         string
	cache       string
	jsonOut     string
	skipImport  bool
	only        []string // phase name prefixes to run (all when empty)
	hubFlags    []string // extra `connect hub serve` flags
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	users := 10000
	if v := os.Getenv("BENCH_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			return c, fmt.Errorf("BENCH_USERS=%q: want an integer ≥ 1000", v)
		}
		users = n
	}
	fs.IntVar(&c.users, "users", users, "users in the hub (default $BENCH_USERS, else 10000)")
	fs.IntVar(&c.runs, "runs", 3, "repetitions; medians are reported")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of each timed load phase")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unrecorded load before each timed phase")
	fs.IntVar(&c.conc, "conc", 8, "concurrent requests of the closed-loop GET, filter and POST phases")
	fs.IntVar(&c.pageConc, "page-conc", 2, "concurrent requests of the page phases")
	fs.Float64Var(&c.rate, "rate", 5000, "requests/s of the open-loop GET and filter phases (the budget)")
	fs.IntVar(&c.openWorkers, "open-workers", 64, "most concurrent requests of an open-loop phase")
	fs.IntVar(&c.patches, "patches", 5, "PATCH add/remove rounds per run")
	fs.IntVar(&c.polls, "polls", 200, "Changes polls per run (at most)")
	fs.IntVar(&c.importRows, "import", 100000, "users in the `users import` phase")
	fs.BoolVar(&c.skipImport, "skip-import", false, "leave out the import phase")
	fs.StringVar(&c.bin, "bin", "", "connect binary to use (default: build ./cmd/connect)")
	fs.StringVar(&c.cache, "cache", "", "cache directory (default ${XDG_CACHE_HOME:-~/.cache}/connect-bench)")
	fs.StringVar(&c.jsonOut, "json", "", "also write every result to this JSON file")
	only := fs.String("only", "", "comma-separated prefixes of the phases to run (default all), e.g. \"GET /Users/{id}\"")
	hubFlags := fs.String("hub-flags", "", "extra `connect hub serve` flags, space-separated (e.g. \"--log-level warn\"), for experiments")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, p := range strings.Split(*only, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.only = append(c.only, p)
		}
	}
	c.hubFlags = strings.Fields(*hubFlags)
	if c.users < 1000 || c.runs < 1 || c.duration <= 0 || c.conc < 1 || c.pageConc < 1 || c.rate <= 0 || c.openWorkers < 1 || c.patches < 1 || c.polls < 1 || c.importRows < 1 {
		return c, errors.New("loadtest: -users ≥ 1000 and positive -runs, -duration, -conc, -page-conc, -rate, -open-workers, -patches, -polls, -import")
	}
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = run(ctx, log, cfg, os.Stdout)
	}
	if err != nil {
		log.Error("loadtest failed", "err", err)
		os.Exit(1)
	}
}

// runEnv is what the phases of one run share.
type runEnv struct {
	cfg  config
	run  int
	hub  *hubProc
	c    *client
	seed *seeded
}

func run(ctx context.Context, log *slog.Logger, cfg config, out io.Writer) error {
	dir := cfg.cache
	if dir == "" {
		var err error
		if dir, err = cacheDir(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o755); err != nil {
		return err
	}
	bin := cfg.bin
	if bin == "" {
		root, err := moduleRoot(ctx)
		if err != nil {
			return err
		}
		log.Info("building connect", "root", root)
		if bin, err = buildConnect(ctx, root, dir); err != nil {
			return err
		}
	}
	sd, err := seed(ctx, log, bin, dir, cfg.users)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	importCSV := filepath.Join(dir, fmt.Sprintf("import-%d.csv", cfg.importRows))
	if !cfg.skipImport {
		if _, err := os.Stat(importCSV); err != nil {
			if err := writeCSV(importCSV, "imp", cfg.importRows); err != nil {
				return err
			}
		}
	}

	rep := report{Machine: machine(), Config: cfg.describe(), Seed: sd.meta}
	rep.Seed.Token = ""
	fmt.Fprintf(out, "connect hub load test: %d users, %d run(s); %s\n", cfg.users, cfg.runs, rep.Machine)
	for r := range cfg.runs {
		rr, err := oneRun(ctx, log, cfg, bin, dir, sd, importCSV, r)
		if err != nil {
			return fmt.Errorf("run %d: %w", r+1, err)
		}
		rep.Runs = append(rep.Runs, rr)
		rr.print(out)
	}
	rep.summarise()
	rep.print(out, cfg)
	if cfg.jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// oneRun copies the seeded database, starts a hub on it and runs every phase.
func oneRun(ctx context.Context, log *slog.Logger, cfg config, bin, dir string, sd *seeded, importCSV string, r int) (runReport, error) {
	rr := runReport{Run: r + 1, LoadBefore: loadAvg()}
	work := filepath.Join(dir, "work")
	db := filepath.Join(work, "hub.db")
	log.Info("run: copying the seeded database", "run", r+1)
	if err := copyDB(db, sd.db); err != nil {
		return rr, err
	}
	h, err := startHub(ctx, bin, "sqlite:"+db, filepath.Join(work, "hub.log"), cfg.hubFlags...)
	if err != nil {
		return rr, err
	}
	log.Info("hub started", "pid", h.cmd.Process.Pid, "url", h.base)
	defer func() {
		if h != nil {
			_ = h.stop()
		}
	}()
	e := &runEnv{cfg: cfg, run: r, hub: h, c: newClient(h.base, sd.meta.Token, max(cfg.openWorkers, cfg.conc)), seed: sd}
	if rr.StartRSS, err = h.rss(); err != nil {
		return rr, err
	}
	peak, _ := h.peakRSS()
	for _, ph := range e.phases() {
		if ctx.Err() != nil {
			return rr, ctx.Err()
		}
		if !cfg.selected(ph.name) {
			continue
		}
		log.Info("phase", "run", r+1, "phase", ph.name, "load", loadAvg())
		if ph.warm != nil {
			ph.warm(ctx)
		}
		resetOK := h.resetPeak()
		hubCPU0, _ := h.cpuTime()
		genCPU0 := selfCPU()
		res, err := ph.fn(ctx)
		if err != nil {
			return rr, fmt.Errorf("%s: %w", ph.name, err)
		}
		hubCPU1, cpuErr := h.cpuTime()
		genCPU := selfCPU() - genCPU0
		if len(res) == 1 && res[0].Requests > 0 && cpuErr == nil {
			res[0].HubCPU = (hubCPU1 - hubCPU0) / time.Duration(res[0].Requests)
			res[0].GenCPU = genCPU / time.Duration(res[0].Requests)
		}
		for i := range res {
			if p, err := h.peakRSS(); err == nil {
				if resetOK {
					res[i].PeakRSS = p
				}
				peak = max(peak, p)
			}
			if res[i].Errors > 0 {
				log.Warn("requests failed", "phase", res[i].Phase, "errors", res[i].Errors, "first", res[i].FirstErr)
			}
		}
		rr.Results = append(rr.Results, res...)
	}
	if p, err := h.peakRSS(); err == nil {
		peak = max(peak, p)
	}
	rr.PeakRSS = peak
	err = h.stop()
	h = nil
	if err != nil {
		return rr, fmt.Errorf("hub: %w", err)
	}
	if !cfg.skipImport && cfg.selected("users import") {
		log.Info("phase", "run", r+1, "phase", "users import", "load", loadAvg())
		res, err := importPhase(ctx, bin, work, importCSV, cfg.importRows)
		if err != nil {
			return rr, err
		}
		rr.Results = append(rr.Results, res)
	}
	rr.LoadAfter = loadAvg()
	return rr, nil
}

type phase struct {
	name string
	warm func(ctx context.Context) // unrecorded load first, or nil
	fn   func(ctx context.Context) ([]result, error)
}

// phases lists the load phases of a run in order; later ones read what earlier
// ones wrote (the Changes polls walk the journal of the POST phase).
func (e *runEnv) phases() []phase {
	cfg, c, ids, n := e.cfg, e.c, e.seed.ids, e.cfg.users
	status := func(want int, code int, body []byte, err error) error {
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("status %d: %.200s", code, body)
		}
		return nil
	}
	getByID := func(ctx context.Context, _, _ int) error {
		code, body, err := c.do(ctx, "GET", "/Users/"+ids[rand.IntN(len(ids))], nil)
		return status(http.StatusOK, code, body, err)
	}
	byUserName := func(ctx context.Context, _, _ int) error {
		f := fmt.Sprintf(`userName eq "user%07d"`, rand.IntN(n))
		code, body, err := c.do(ctx, "GET", "/Users?filter="+url.QueryEscape(f), nil)
		if err := status(http.StatusOK, code, body, err); err != nil {
			return err
		}
		if !bytes.Contains(body, []byte(`"totalResults":1,`)) {
			return fmt.Errorf("%s: not exactly one user: %.200s", f, body)
		}
		return nil
	}
	page := func(start func() int) op {
		return func(ctx context.Context, _, _ int) error {
			code, body, err := c.do(ctx, "GET", fmt.Sprintf("/Users?startIndex=%d&count=100", start()), nil)
			if err := status(http.StatusOK, code, body, err); err != nil {
				return err
			}
			if !bytes.Contains(body, []byte(`"itemsPerPage":100,`)) {
				return fmt.Errorf("page of other than 100 users: %.200s", body)
			}
			return nil
		}
	}
	deepSpan := max(1, min(n/10, 10000))
	cursors := make([]string, cfg.pageConc)
	cursorPage := func(ctx context.Context, w, _ int) error {
		code, body, err := c.do(ctx, "GET", "/Users?count=100&cursor="+url.QueryEscape(cursors[w]), nil)
		if err := status(http.StatusOK, code, body, err); err != nil {
			return err
		}
		next := jsonString(body, "nextCursor")
		cursors[w] = next // "" after the last page: start again
		if next != "" && !bytes.Contains(body, []byte(`"itemsPerPage":100,`)) {
			return fmt.Errorf("cursor page of other than 100 users: %.200s", body)
		}
		return nil
	}
	var posted atomic.Int64 // users created, so journal entries after head
	var phaseSeq atomic.Int64
	post := func(ctx context.Context, _, i int) error {
		// Unique across the warm-up and the timed loop, which both number from 0.
		k := int(phaseSeq.Add(1))
		code, body, err := c.do(ctx, "POST", "/Users", newUser(fmt.Sprintf("post-r%d-%07d", e.run, k), k))
		if err := status(http.StatusCreated, code, body, err); err != nil {
			return err
		}
		posted.Add(1)
		return nil
	}
	throughput := func(name string, conc int, fn op) phase {
		return phase{
			name: name + " (closed loop)",
			warm: func(ctx context.Context) {
				if cfg.warmup > 0 {
					closedLoop(ctx, name, conc, cfg.warmup, 0, fn)
				}
			},
			fn: func(ctx context.Context) ([]result, error) {
				return []result{closedLoop(ctx, name, conc, cfg.duration, 0, fn)}, nil
			},
		}
	}
	atRate := func(name string, fn op) phase {
		return phase{name: name + " (open loop)", fn: func(ctx context.Context) ([]result, error) {
			return []result{openLoop(ctx, name, cfg.rate, cfg.openWorkers, cfg.duration, fn)}, nil
		}}
	}
	var head string // journal head before the POST phase
	return []phase{
		throughput("GET /Users/{id}", cfg.conc, getByID),
		atRate("GET /Users/{id}", getByID),
		throughput("GET /Users?filter=userName eq", cfg.conc, byUserName),
		atRate("GET /Users?filter=userName eq", byUserName),
		throughput("page startIndex≤100", cfg.pageConc, page(func() int { return 1 + rand.IntN(100) })),
		throughput(fmt.Sprintf("page startIndex≈%d", n/2), cfg.pageConc, page(func() int { return max(1, n/2-rand.IntN(deepSpan)) })),
		throughput(fmt.Sprintf("page startIndex≥%d", max(1, n-100-deepSpan)),
			cfg.pageConc, page(func() int { return max(1, n-100-rand.IntN(deepSpan)) })),
		throughput("page cursor walk", cfg.pageConc, cursorPage),
		{name: "journal head", fn: func(ctx context.Context) ([]result, error) {
			body, err := c.expect(ctx, http.StatusOK, "GET", "/Changes", nil)
			head = jsonString(body, "nextCursor")
			if err == nil && head == "" {
				err = fmt.Errorf("no nextCursor: %.200s", body)
			}
			return nil, err
		}},
		throughput("POST /Users", cfg.conc, post),
		{name: "Changes poll", fn: func(ctx context.Context) ([]result, error) {
			cursor := head
			poll := func(ctx context.Context, _, _ int) error {
				code, body, err := c.do(ctx, "GET", "/Changes?count=100&cursor="+url.QueryEscape(cursor), nil)
				if err := status(http.StatusOK, code, body, err); err != nil {
					return err
				}
				if !bytes.Contains(body, []byte(`"totalResults":100,`)) {
					return fmt.Errorf("poll without 100 changes: %.200s", body)
				}
				cursor = jsonString(body, "nextCursor")
				return nil
			}
			polls := min(cfg.polls, int(posted.Load()/100))
			if polls == 0 {
				return nil, errors.New("the POST phase created fewer than 100 users")
			}
			return []result{closedLoop(ctx, "GET /Changes (100 changes)", 1, 0, polls, poll)}, nil
		}},
		{name: "PATCH members", fn: e.patchPhase},
	}
}

// patchPhase adds patchAdd members to the seeded group and removes them again,
// cfg.patches times, timing each PATCH.
func (e *runEnv) patchPhase(ctx context.Context) ([]result, error) {
	group, add := groupSizes(e.cfg.users)
	extra := e.seed.ids[group : group+add]
	addBody, removeBody := memberPatch("add", extra), memberPatch("remove", extra)
	path := "/Groups/" + e.seed.meta.GroupID
	var adds, removes recorder
	start := time.Now()
	for range e.cfg.patches {
		for _, step := range []struct {
			rec  *recorder
			body []byte
		}{{&adds, addBody}, {&removes, removeBody}} {
			t := time.Now()
			code, body, err := e.c.do(ctx, "PATCH", path, step.body)
			lat := time.Since(t)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("status %d: %.200s", code, body)
			}
			if err == nil && bytes.Contains(body, []byte(`"members"`)) {
				err = errors.New("the PATCH answer carries the member list")
			}
			errs, first := 0, ""
			if err != nil {
				errs, first = 1, err.Error()
			}
			step.rec.add([]time.Duration{lat}, errs, first)
		}
	}
	elapsed := time.Since(start)
	return []result{
		adds.result(fmt.Sprintf("PATCH add %d members to %d", add, group), "sequential", elapsed),
		removes.result(fmt.Sprintf("PATCH remove %d members of %d", add, group+add), "sequential", elapsed),
	}, nil
}

// importPhase imports rows users from csvPath into a fresh store with the CLI.
func importPhase(ctx context.Context, bin, work, csvPath string, rows int) (result, error) {
	db := filepath.Join(work, "import.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(db + suffix)
	}
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			_ = os.Remove(db + suffix)
		}
	}()
	cmd := exec.CommandContext(ctx, bin, "hub", "users", "import", "--store", "sqlite:"+db, "--no-progress", csvPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return result{}, fmt.Errorf("users import: %w\n%s", err, tail(stderr.String(), 2000))
	}
	want := fmt.Sprintf("imported %d, failed 0", rows)
	res := result{Phase: fmt.Sprintf("users import (%d users)", rows), Mode: "CLI, fresh store", Requests: 1, Elapsed: elapsed,
		PerSec: float64(rows) / elapsed.Seconds(), P50: elapsed, P99: elapsed, Max: elapsed}
	if !strings.Contains(stdout.String(), want) {
		res.Errors, res.FirstErr = 1, "import printed "+strings.TrimSpace(stdout.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.PeakRSS = ru.Maxrss << 10
	}
	return res, nil
}

// jsonString finds the string value of a top-level "key" in a JSON body
// without decoding it all (pages are large; the harness shares the CPUs).
func jsonString(body []byte, key string) string {
	i := bytes.Index(body, []byte(`"`+key+`":"`))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key)+4:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// selected reports whether the phase named name runs (see -only). The Changes
// poll needs the journal head and the POST phase that writes the changes.
func (c config) selected(name string) bool {
	if len(c.only) == 0 {
		return true
	}
	for _, p := range c.only {
		if strings.HasPrefix(name, p) {
			return true
		}
		changes := strings.HasPrefix("Changes poll", p)
		if changes && (name == "journal head" || strings.HasPrefix(name, "POST /Users")) {
			return true
		}
	}
	return false
}

func (c config) describe() string {
	return fmt.Sprintf("users=%d runs=%d duration=%s warmup=%s conc=%d page-conc=%d rate=%.0f/s open-workers=%d patches=%d polls=%d import=%d",
		c.users, c.runs, c.duration, c.warmup, c.conc, c.pageConc, c.rate, c.openWorkers, c.patches, c.polls, c.importRows)
}

// machine describes the host: CPUs and model.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s", runtime.NumCPU(), model, runtime.Version())
}
