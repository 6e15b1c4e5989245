package deploytest

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite generated files (deploy/kubernetes/monitoring/prometheusrules.yaml)")

// buildDir holds the connect binary built on first use; TestMain removes it.
var (
	buildDir  string
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// connectBinary returns the path of the connect command, built once per test
// binary from this checkout.
func connectBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "connect-deploytest-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "connect")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/connect")
		cmd.Dir = repoRoot(tb)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build ./cmd/connect: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildPath
}

// repoRoot is the module root: two levels above this package.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

// deployPath joins elements under deploy/.
func deployPath(tb testing.TB, elem ...string) string {
	tb.Helper()
	return filepath.Join(append([]string{repoRoot(tb), "deploy"}, elem...)...)
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// yamlDocs decodes every document of a YAML stream, skipping empty ones.
func yamlDocs(tb testing.TB, name string, data []byte) []map[string]any {
	tb.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

// yamlFile decodes every document of a YAML file.
func yamlFile(tb testing.TB, path string) []map[string]any {
	tb.Helper()
	return yamlDocs(tb, path, []byte(readFile(tb, path)))
}

// globFiles lists files under dir whose names end in one of exts, sorted.
func globFiles(tb testing.TB, dir string, exts ...string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		for _, e := range exts {
			if strings.HasSuffix(p, e) {
				out = append(out, p)
				break
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// path walks nested maps and lists: path(obj, "spec", "template", "spec").
// An int element indexes a list. It returns nil when any step is missing.
func path(v any, elems ...any) any {
	for _, e := range elems {
		switch k := e.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, elems ...any) string {
	s, _ := path(v, elems...).(string)
	return s
}

func list(v any, elems ...any) []any {
	l, _ := path(v, elems...).([]any)
	return l
}

func mapping(v any, elems ...any) map[string]any {
	m, _ := path(v, elems...).(map[string]any)
	return m
}

// stringMap converts a YAML mapping of scalars to strings.
func stringMap(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// runCmd runs a command and returns its combined output and error.
func runCmd(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
