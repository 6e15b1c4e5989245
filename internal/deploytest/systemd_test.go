package deploytest

import (
	"bufio"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/connectsso/connect/internal/testenv"
)

// units are the systemd services of deploy/systemd, by role.
var units = map[string]string{"hub": "connect-hub.service", "bridge": "connect-bridge.service"}

// unitFile parses a unit into section → key → values (a key may repeat).
func unitFile(tb testing.TB, name string) map[string]map[string][]string {
	tb.Helper()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(readFile(tb, deployPath(tb, "systemd", name))))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				tb.Fatalf("%s: bad line %q", name, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// systemRoot makes a file-system root for systemd-analyze --root: the host's
// unit files (for the targets our units order against), our units in
// /etc/systemd/system and the connect binary at /usr/local/bin/connect.
func systemRoot(tb testing.TB, extra map[string]string) string {
	tb.Helper()
	root := tb.TempDir()
	var src string
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "multi-user.target")); err == nil {
			src = d
			break
		}
	}
	if src == "" {
		testenv.Missing(tb, "systemd unit files (multi-user.target)")
	}
	copyTree(tb, src, filepath.Join(root, "usr/lib/systemd/system"))
	etc := filepath.Join(root, "etc/systemd/system")
	bin := filepath.Join(root, "usr/local/bin")
	for _, d := range []string{etc, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, u := range units {
		copyFile(tb, deployPath(tb, "systemd", u), filepath.Join(etc, u), 0o644)
	}
	for name, content := range extra {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	copyFile(tb, connectBinary(tb), filepath.Join(bin, "connect"), 0o755)
	return root
}

func copyTree(tb testing.TB, src, dst string) {
	tb.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			copyFile(tb, p, target, 0o644)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func copyFile(tb testing.TB, src, dst string, mode os.FileMode) {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// TestSystemdUnitsVerify runs systemd-analyze verify on the units: unknown
// keys, unparsable values, missing executables and broken ordering all print
// a line, so any output fails. A deliberately broken copy shows the check
// can fail.
func TestSystemdUnitsVerify(t *testing.T) {
	sa := testenv.Binary(t, "systemd-analyze")
	broken := strings.Replace(readFile(t, deployPath(t, "systemd", units["hub"])), "ProtectSystem=strict", "ProtectSystm=strict", 1)
	broken = strings.Replace(broken, "RestartSec=2s", "RestartSec=soon", 1)
	root := systemRoot(t, map[string]string{"connect-broken.service": broken})
	for _, tt := range []struct {
		unit  string
		clean bool
	}{
		{units["hub"], true},
		{units["bridge"], true},
		{"connect-broken.service", false},
	} {
		t.Run(tt.unit, func(t *testing.T) {
			out, err := runCmd("", nil, sa, "verify", "--man=no", "--generators=no", "--root="+root, tt.unit)
			out = strings.TrimSpace(out)
			if tt.clean && (err != nil || out != "") {
				t.Errorf("systemd-analyze verify %s: %v\n%s", tt.unit, err, out)
			}
			if !tt.clean && (!strings.Contains(out, "Unknown key") || !strings.Contains(out, "Failed to parse")) {
				t.Errorf("systemd-analyze verify of a broken unit said %q; the check would miss mistakes", out)
			}
		})
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// TestSystemdSandboxExposure scores the units' sandboxing with systemd-analyze
// security (0 = fully locked down, 10 = unprotected) and fails above 2.0, so a
// hardening line removed by mistake is noticed.
func TestSystemdSandboxExposure(t *testing.T) {
	sa := testenv.Binary(t, "systemd-analyze")
	root := systemRoot(t, nil)
	for _, u := range units {
		out, err := runCmd("", nil, sa, "security", "--offline=yes", "--no-pager", "--threshold=20", "--root="+root, u)
		m := exposureRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: no exposure level in\n%s", u, out)
		}
		score, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("%s: exposure %.1f", u, score)
		if err != nil || score > 2.0 {
			t.Errorf("%s: exposure %.1f above 2.0 (%v)\n%s", u, score, err, out)
		}
	}
}

// TestSysusersCreatesServiceUsers applies connect.sysusers to an empty root
// with systemd-sysusers and checks that the units' User= and Group= exist,
// with the state directory as home.
func TestSysusersCreatesServiceUsers(t *testing.T) {
	su := testenv.Binary(t, "systemd-sysusers")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		if err := os.WriteFile(filepath.Join(root, "etc", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runCmd("", nil, su, "--root="+root, deployPath(t, "systemd", "connect.sysusers")); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd := map[string][]string{}
	for _, l := range strings.Split(readFile(t, filepath.Join(root, "etc/passwd")), "\n") {
		if f := strings.Split(l, ":"); len(f) == 7 {
			passwd[f[0]] = f
		}
	}
	groups := readFile(t, filepath.Join(root, "etc/group"))
	for role, u := range units {
		svc := unitFile(t, u)["Service"]
		user, group, state := first(svc["User"]), first(svc["Group"]), first(svc["StateDirectory"])
		p := passwd[user]
		if p == nil {
			t.Errorf("%s: User=%s is not created by connect.sysusers", u, user)
			continue
		}
		if uid, _ := strconv.Atoi(p[2]); uid == 0 || uid >= 1000 {
			t.Errorf("%s: user %s has uid %s, want a system uid", u, user, p[2])
		}
		if home := "/var/lib/" + state; p[5] != home || first(svc["WorkingDirectory"]) != home {
			t.Errorf("%s: home %s, WorkingDirectory %s, StateDirectory %s disagree", u, p[5], first(svc["WorkingDirectory"]), state)
		}
		if !strings.Contains(groups, group+":") {
			t.Errorf("%s: Group=%s is not created", u, group)
		}
		if env := first(svc["EnvironmentFile"]); env != "/etc/connect/"+role+".env" {
			t.Errorf("%s: EnvironmentFile=%s, want /etc/connect/%s.env (what %s.env.example says)", u, env, role, role)
		}
		if got, want := first(svc["ExecStart"]), "/usr/local/bin/connect "+role+" serve"; got != want {
			t.Errorf("%s: ExecStart=%s, want %s", u, got, want)
		}
	}
}

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// envExample parses deploy/systemd/ROLE.env.example as systemd reads an
// EnvironmentFile, refusing anything systemd and sh would read differently:
// unquoted values with shell metacharacters or spaces, quotes inside quotes,
// escapes and $ expansions.
func envExample(tb testing.TB, role string) map[string]string {
	tb.Helper()
	name := role + ".env.example"
	out := map[string]string{}
	for i, line := range strings.Split(readFile(tb, deployPath(tb, "systemd", name)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(k) {
			tb.Fatalf("%s:%d: want VARIABLE=value, got %q", name, i+1, line)
		}
		if strings.HasPrefix(v, `"`) {
			if len(v) < 2 || !strings.HasSuffix(v, `"`) || strings.ContainsAny(v[1:len(v)-1], "\"\\$`") {
				tb.Fatalf("%s:%d: a quoted value must be one plain \"…\" string", name, i+1)
			}
			v = v[1 : len(v)-1]
		} else if !regexp.MustCompile(`^[A-Za-z0-9_./:@=%+,-]*$`).MatchString(v) {
			tb.Fatalf("%s:%d: value %q needs double quotes (systemd and sh would disagree)", name, i+1, v)
		}
		out[k] = v
	}
	return out
}

// TestEnvExamplesReadAlikeBySystemdAndShell sources each example with sh, as
// the admin commands in its header do, and compares with systemd's reading.
func TestEnvExamplesReadAlikeBySystemdAndShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for role := range units {
		t.Run(role, func(t *testing.T) {
			want := envExample(t, role)
			prefix := "CONNECT_" + strings.ToUpper(role) + "_"
			for k := range want {
				if !strings.HasPrefix(k, prefix) {
					t.Errorf("%s is not a %s* setting", k, prefix)
				}
			}
			out, err := runCmd("", []string{"PATH=/usr/bin:/bin"}, sh, "-c", `set -a; . "$1"; exec env -0`, "sh", deployPath(t, "systemd", role+".env.example"))
			if err != nil {
				t.Fatalf("sh: %v\n%s", err, out)
			}
			got := map[string]string{}
			for _, kv := range strings.Split(out, "\x00") {
				if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CONNECT_") {
					got[k] = v
				}
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: systemd reads %q, sh reads %q", k, v, got[k])
				}
			}
			if len(got) != len(want) {
				t.Errorf("sh sets %d CONNECT_ variables, systemd %d", len(got), len(want))
			}
		})
	}
}
