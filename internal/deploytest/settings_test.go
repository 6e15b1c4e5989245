package deploytest

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/connectsso/connect/internal/testenv"
)

var (
	helpEnvRE     = regexp.MustCompile(`\$(CONNECT_[A-Z0-9_]+)`)
	deployedEnvRE = regexp.MustCompile(`\bCONNECT_(?:HUB|BRIDGE)_[A-Z0-9_]*[A-Z0-9]\b`)
)

// serveEnv returns the environment variables `connect ROLE serve --help`
// documents, or ok=false when this build has no such command yet.
func serveEnv(tb testing.TB, role string) (vars map[string]bool, ok bool) {
	tb.Helper()
	out, err := runCmd("", nil, connectBinary(tb), role, "serve", "--help")
	if err != nil {
		if strings.Contains(out, "No help topic") {
			return nil, false
		}
		tb.Fatalf("connect %s serve --help: %v\n%s", role, err, out)
	}
	vars = map[string]bool{}
	for _, m := range helpEnvRE.FindAllStringSubmatch(out, -1) {
		vars[m[1]] = true
	}
	if len(vars) == 0 {
		tb.Fatalf("connect %s serve --help lists no environment variables:\n%s", role, out)
	}
	return vars, true
}

// needServe skips a bridge test while `connect bridge serve` is not built.
func needServe(tb testing.TB, role string) map[string]bool {
	tb.Helper()
	vars, ok := serveEnv(tb, role)
	if !ok {
		tb.Skipf("this build has no `connect %s serve` yet", role)
	}
	return vars
}

// TestDeployedSettingsAreRealFlags finds every CONNECT_HUB_* and
// CONNECT_BRIDGE_* name in the deploy files (settings, commented
// alternatives, documentation) and requires `connect … serve --help` to list
// it: a misspelt variable is silently ignored at run time.
func TestDeployedSettingsAreRealFlags(t *testing.T) {
	var files []string
	for _, dir := range []string{"systemd", "kubernetes", "container"} {
		files = append(files, globFiles(t, deployPath(t, dir), "")...)
	}
	files = append(files, deployPath(t, "README.md"))
	names := map[string][]string{}
	for _, f := range files {
		rel, _ := filepath.Rel(deployPath(t), f)
		for _, n := range deployedEnvRE.FindAllString(readFile(t, f), -1) {
			names[n] = append(names[n], rel)
		}
	}
	for role := range units {
		t.Run(role, func(t *testing.T) {
			vars := needServe(t, role)
			prefix := "CONNECT_" + strings.ToUpper(role) + "_"
			var checked int
			for n, where := range names {
				if !strings.HasPrefix(n, prefix) {
					continue
				}
				checked++
				if !vars[n] {
					sort.Strings(where)
					t.Errorf("%s (in %s) is not a setting of connect %s serve", n, strings.Join(where, ", "), role)
				}
			}
			if checked < 4 {
				t.Errorf("only %d %s* names found in deploy/", checked, prefix)
			}
		})
	}
}

// baseEnv is the environment a test gives a connect process: only what the
// process needs besides its settings.
func baseEnv(tb testing.TB) []string {
	tb.Helper()
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tb.TempDir()}
}

func envList(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// TestSystemdEnvPassesCheckConfig runs the units' ExecStartPre,
// `connect ROLE check-config`, with exactly the settings of the example env
// file; only the SQLite path moves from /var/lib to a temporary directory
// (and the bridge's Redis to the test Redis).
func TestSystemdEnvPassesCheckConfig(t *testing.T) {
	for role := range units {
		t.Run(role, func(t *testing.T) {
			needServe(t, role)
			env := envExample(t, role)
			prefix := "CONNECT_" + strings.ToUpper(role) + "_"
			store := env[prefix+"STORE"]
			stateDir := "sqlite:/var/lib/connect-" + role + "/"
			if !strings.HasPrefix(store, stateDir) {
				t.Fatalf("%sSTORE=%s: want SQLite in the unit's state directory", prefix, store)
			}
			env[prefix+"STORE"] = "sqlite:" + filepath.Join(t.TempDir(), strings.TrimPrefix(store, stateDir))
			if _, ok := env[prefix+"REDIS"]; ok {
				env[prefix+"REDIS"] = "redis://" + testenv.RedisAddr(t) + "/0"
			}
			out, err := runCmd(t.TempDir(), append(baseEnv(t), envList(env)...), connectBinary(t), role, "check-config")
			if err != nil {
				t.Errorf("connect %s check-config with %s.env.example: %v\n%s", role, role, err, out)
			}
			t.Logf("connect %s check-config:\n%s", role, out)
		})
	}
}

// deployment returns the base Deployment running `connect ROLE serve`.
func deployment(tb testing.TB, role string) map[string]any {
	tb.Helper()
	for _, d := range baseObjects(tb)["Deployment"] {
		if args := list(d, "spec", "template", "spec", "containers", 0, "args"); len(args) > 0 && args[0] == role {
			return d
		}
	}
	tb.Fatalf("no %s Deployment in the base", role)
	return nil
}

// bytesOf converts a Kubernetes memory quantity (512Mi) to bytes, as
// resourceFieldRef does for GOMEMLIMIT.
func bytesOf(tb testing.TB, q string) string {
	tb.Helper()
	for suffix, mult := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
		if n, ok := strings.CutSuffix(q, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				tb.Fatalf("quantity %q: %v", q, err)
			}
			return strconv.FormatInt(v*mult, 10)
		}
	}
	tb.Fatalf("quantity %q: want Ki, Mi or Gi", q)
	return ""
}

// podEnv is the environment Kubernetes gives the container of the role's
// Deployment: the generated ConfigMap, the Secret values (given here) and
// GOMEMLIMIT from the memory limit.
func podEnv(tb testing.TB, role string, secrets map[string]string) map[string]string {
	tb.Helper()
	dep := deployment(tb, role)
	c := path(dep, "spec", "template", "spec", "containers", 0)
	env := map[string]string{}
	for _, ef := range list(c, "envFrom") {
		for k, v := range generatedConfig(tb, deployPath(tb, "kubernetes", "base"), str(ef, "configMapRef", "name")) {
			env[k] = v
		}
	}
	for _, e := range list(c, "env") {
		name := str(e, "name")
		switch {
		case mapping(e, "valueFrom", "secretKeyRef") != nil:
			key := str(e, "valueFrom", "secretKeyRef", "key")
			v, ok := secrets[key]
			if !ok {
				tb.Fatalf("%s: the test has no value for Secret key %s", name, key)
			}
			env[name] = v
		case str(e, "valueFrom", "resourceFieldRef", "resource") == "limits.memory":
			env[name] = bytesOf(tb, str(c, "resources", "limits", "memory"))
		case path(e, "value") != nil:
			env[name] = str(e, "value")
		default:
			tb.Fatalf("env %s: a source this test does not know", name)
		}
	}
	return env
}

// process is a running connect server.
type process struct {
	cmd  *exec.Cmd
	addr chan string
	done chan struct{} // closed once the process has exited; err is then set
	err  error
	bad  chan string // a log line that is not JSON
	mu   sync.Mutex
	logs strings.Builder
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// boundRE matches a loopback address with the port the kernel picked.
var boundRE = regexp.MustCompile(`^127\.0\.0\.1:[1-9][0-9]*$`)

// startJSON starts connect with env and reads its JSON log lines, learning
// the bound address from the first line that carries one.
func startJSON(tb testing.TB, env []string, args ...string) *process {
	tb.Helper()
	p := &process{cmd: exec.Command(connectBinary(tb), args...), addr: make(chan string, 1), done: make(chan struct{}), bad: make(chan string, 1)}
	p.cmd.Env = env
	p.cmd.Dir = tb.TempDir()
	dieWithTest(p.cmd)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() {
		for l := range lines {
			p.mu.Lock()
			p.logs.WriteString(l + "\n")
			p.mu.Unlock()
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				select {
				case p.bad <- l:
				default:
				}
				continue
			}
			// The bound address: the hub logs addr=, the bridge listen=.
			for _, k := range []string{"addr", "listen"} {
				if a, ok := rec[k].(string); ok && boundRE.MatchString(a) {
					select {
					case p.addr <- a:
					default:
					}
				}
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

func (p *process) waitAddr(tb testing.TB) string {
	tb.Helper()
	select {
	case a := <-p.addr:
		return a
	case <-p.done:
		tb.Fatalf("exited before listening: %v\n%s", p.err, p.log())
	case <-time.After(60 * time.Second):
		tb.Fatalf("no JSON log line with the bound address within 60 s:\n%s", p.log())
	}
	return ""
}

func get(tb testing.TB, u string) (int, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReplicasServeWithKubernetesSettings starts the replicas of each
// Deployment as Kubernetes would (its generated ConfigMap, its Secrets and
// GOMEMLIMIT from the memory limit) at once on one fresh PostgreSQL schema
// (and, for the bridge, the test Redis), then asks each the Deployment's probe
// paths and the annotated metrics path, and stops it with SIGTERM within the
// grace period. Only the listen address differs: a free loopback port instead
// of :8080.
func TestReplicasServeWithKubernetesSettings(t *testing.T) {
	for _, role := range []string{"hub", "bridge"} {
		t.Run(role, func(t *testing.T) {
			needServe(t, role)
			dsn := testenv.PostgresSchema(t)
			secrets := map[string]string{"store": dsn}
			if role == "bridge" {
				secrets["redis"] = "redis://" + testenv.RedisAddr(t) + "/0"
			}
			replicasServe(t, role, dsn, secrets)
		})
	}
}

func replicasServe(t *testing.T, role, dsn string, secrets map[string]string) {
	dep := deployment(t, role)
	env := podEnv(t, role, secrets)
	env["CONNECT_"+strings.ToUpper(role)+"_LISTEN"] = "127.0.0.1:0"
	c := path(dep, "spec", "template", "spec", "containers", 0)
	var args []string
	for _, a := range list(c, "args") {
		args = append(args, a.(string))
	}
	replicas, _ := path(dep, "spec", "replicas").(int)
	procs := make([]*process, replicas)
	for i := range procs {
		procs[i] = startJSON(t, append(baseEnv(t), envList(env)...), args...)
	}
	grace, _ := path(dep, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
	defer func() {
		// The replicas used the Secret's store: the schema holds the tables.
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&n); err != nil || n == 0 {
			t.Errorf("the %s made no tables in the Secret's schema (%d, %v)", role, n, err)
		}
	}()
	for i, p := range procs {
		base := "http://" + p.waitAddr(t)
		for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
			pth := str(c, probe, "httpGet", "path")
			if code, body := get(t, base+pth); code != http.StatusOK {
				t.Errorf("replica %d: %s %s = %d %q", i, probe, pth, code, body)
			}
		}
		ann := mapping(dep, "spec", "template", "metadata", "annotations")
		code, body := get(t, base+str(ann, "prometheus.io/path"))
		if code != http.StatusOK || !strings.Contains(body, "# TYPE go_goroutines gauge") {
			t.Errorf("replica %d: metrics path = %d, not a Prometheus exposition", i, code)
		}
		if role == "hub" && !strings.Contains(body, "connect_hub_build_info") {
			t.Errorf("replica %d: no connect_hub_build_info in /metrics", i)
		}
		select {
		case l := <-p.bad:
			t.Errorf("replica %d: log line is not JSON (log format from the ConfigMap): %s", i, l)
		default:
		}
	}
	for i, p := range procs {
		start := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("replica %d: exit after SIGTERM: %v\n%s", i, p.err, p.log())
			}
			t.Logf("replica %d stopped %v after SIGTERM", i, time.Since(start).Round(time.Millisecond))
		case <-time.After(time.Duration(grace) * time.Second):
			t.Errorf("replica %d: still running %d s (terminationGracePeriodSeconds) after SIGTERM", i, grace)
		}
	}
}

// TestBridgeCheckConfigWithKubernetesSettings validates the bridge
// Deployment's settings with `connect bridge check-config` against the test
// PostgreSQL and Redis.
func TestBridgeCheckConfigWithKubernetesSettings(t *testing.T) {
	needServe(t, "bridge")
	env := podEnv(t, "bridge", map[string]string{
		"store": testenv.PostgresSchema(t),
		"redis": "redis://" + testenv.RedisAddr(t) + "/0",
	})
	out, err := runCmd(t.TempDir(), append(baseEnv(t), envList(env)...), connectBinary(t), "bridge", "check-config")
	if err != nil {
		t.Errorf("connect bridge check-config with the Deployment's settings: %v\n%s", err, out)
	}
}
