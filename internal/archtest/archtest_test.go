package archtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/connectsso/connect"

// pkg is one package of the module as `go list` reports it, with paths relative
// to the module ("scim/store"). Imports are direct; Deps transitive; both hold
// module packages only and exclude test files.
type pkg struct {
	Path    string
	Imports []string
	Deps    []string
	Std     bool // every dependency is in the standard library
}

// layers ranks packages: a package may import only packages of a strictly lower
// rank. The first matching pattern wins ("*" matches one path element, "**" at
// the end any rest). Packages that match none are checked by the other rules only.
var layers = []struct {
	pattern string
	rank    int
}{
	{"internal/testenv", 0},
	{"internal/testenv/hubproc", 1},
	{"internal/sqlitefile", 0}, // shared by both SQLite stores
	{"internal/gctune", 0},     // GC flags of hub serve, bridge serve and sync
	{"scim", 0},
	{"scim/password", 1},
	{"scim/filter", 1},
	{"scim/store", 2},
	{"scim/patch", 3},
	{"scim/store/internal/**", 3},
	{"scim/store/storetest", 3},
	{"scim/store/*", 4}, // backends
	{"scim/client", 4},
	{"scim/server", 4},
	{"scim/server/**", 5},
	{"saml/internal/**", 4}, // what saml/idp and saml/sp read alike from metadata
	{"saml/**", 5},
	{"scim/hub", 6},
	{"bridge/state", 1},
	{"bridge/state/statetest", 3},
	{"bridge/state/*", 4}, // backends
	{"bridge/local", 2},
	{"bridge/local/internal/**", 3},
	{"bridge/local/localtest", 3},
	{"bridge/local/*", 4}, // backends
	{"bridge", 5},         // the sync engine
	{"bridge/sso", 6},     // bridge ↔ saml/sp adapters
	{"cmd/**", 10},
}

func match(pattern, p string) bool {
	if rest, ok := strings.CutSuffix(pattern, "/**"); ok {
		return strings.HasPrefix(p, rest+"/")
	}
	ok, _ := path.Match(pattern, p)
	return ok
}

func rank(p string) (int, bool) {
	for _, l := range layers {
		if match(l.pattern, p) {
			return l.rank, true
		}
	}
	return 0, false
}

// isBackend reports whether p is a swappable backend of a contract: a store,
// state or local-directory implementation (DESIGN.md §9).
func isBackend(p string) bool {
	for _, parent := range []string{"scim/store", "bridge/state", "bridge/local"} {
		rest, ok := strings.CutPrefix(p, parent+"/")
		if ok && !strings.Contains(rest, "/") && !strings.HasSuffix(rest, "test") && rest != "internal" {
			return true
		}
	}
	return false
}

// violations applies every rule to pkgs and returns one line per breach.
func violations(pkgs []pkg) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, p := range pkgs {
		if (p.Path == "scim" || p.Path == "internal/testenv" || p.Path == "internal/gctune") && !p.Std {
			add("%s must import the standard library only", p.Path)
		}
		if r, ok := rank(p.Path); ok {
			for _, imp := range p.Imports {
				if ri, ok := rank(imp); ok && ri >= r {
					add("%s (layer %d) imports %s (layer %d): imports must point down", p.Path, r, imp, ri)
				}
			}
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "scim/store/internal/") && !isBackend(p.Path) && !strings.HasPrefix(p.Path, "scim/store/internal/") {
				add("%s imports %s, which belongs to the store backends", p.Path, imp)
			}
		}
		for _, d := range p.Deps {
			switch {
			case isBackend(d) && !strings.HasPrefix(p.Path, "cmd/") && !strings.HasPrefix(p.Path, d+"/"):
				add("%s depends on backend %s: only cmd/connect picks backends", p.Path, d)
			case strings.HasPrefix(p.Path, "saml/") && (d == "scim/store" || strings.HasPrefix(d, "scim/store/")):
				add("%s depends on %s: saml/* never imports stores (it declares what it looks up)", p.Path, d)
			case (p.Path == "bridge" || strings.HasPrefix(p.Path, "bridge/")) && (d == "scim/server" || strings.HasPrefix(d, "scim/server/")):
				add("%s depends on %s: the bridge never imports the SCIM server", p.Path, d)
			case d == "scim/server" && isBackend(p.Path):
				add("%s depends on scim/server: a backend never imports a server", p.Path)
			}
		}
	}
	sort.Strings(out)
	return out
}

type listed struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
}

// load lists the module's packages (non-test code) with `go list`.
func load(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Standard,Imports,Deps,Error", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	std := map[string]bool{}
	var all []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var l listed
		if err := dec.Decode(&l); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		std[l.ImportPath] = l.Standard
		all = append(all, l)
	}
	rel := func(paths []string) (mod []string, stdOnly bool) {
		stdOnly = true
		for _, p := range paths {
			if r, ok := strings.CutPrefix(p, module+"/"); ok {
				mod = append(mod, r)
			}
			if !std[p] && p != "C" && p != "unsafe" {
				stdOnly = false
			}
		}
		return mod, stdOnly
	}
	var pkgs []pkg
	for _, l := range all {
		p, ok := strings.CutPrefix(l.ImportPath, module+"/")
		if l.ImportPath == module {
			p, ok = ".", true
		}
		if !ok {
			continue
		}
		if l.Error != nil {
			t.Logf("go list: %s: %s (checked as far as listed)", p, l.Error.Err)
		}
		imports, _ := rel(l.Imports)
		deps, stdOnly := rel(l.Deps)
		pkgs = append(pkgs, pkg{Path: p, Imports: imports, Deps: deps, Std: stdOnly})
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	pkgs := load(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.Path] = true
		if _, ok := rank(p.Path); !ok {
			t.Logf("%s has no layer in the table; only the specific rules apply", p.Path)
		}
	}
	for _, must := range []string{"scim", "scim/store", "scim/filter", "internal/gctune", "cmd/connect"} {
		if !seen[must] {
			t.Fatalf("go list did not report %s: the listing is wrong", must)
		}
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestRulesCatch proves each rule fires on a graph that breaks it.
func TestRulesCatch(t *testing.T) {
	tests := []struct {
		name string
		pkgs []pkg
		want string
	}{
		{"leaf not stdlib", []pkg{{Path: "scim", Std: false}}, "scim must import the standard library only"},
		{"gctune not stdlib", []pkg{{Path: "internal/gctune", Std: false}}, "internal/gctune must import the standard library only"},
		{"import up", []pkg{{Path: "scim/filter", Imports: []string{"scim/store"}}}, "scim/filter (layer 1) imports scim/store (layer 2)"},
		{"store imports backend", []pkg{{Path: "scim/store", Imports: []string{"scim/store/sqlite"}, Deps: []string{"scim/store/sqlite"}}}, "scim/store depends on backend scim/store/sqlite"},
		{"server imports backend", []pkg{{Path: "scim/server", Imports: []string{"scim/store/postgres"}, Deps: []string{"scim/store/postgres"}}}, "scim/server (layer 4) imports scim/store/postgres (layer 4)"},
		{"hub reaches a backend transitively", []pkg{{Path: "scim/hub", Deps: []string{"scim/store/sqlite"}}}, "scim/hub depends on backend scim/store/sqlite"},
		{"saml imports store", []pkg{{Path: "saml/idp", Deps: []string{"scim/store"}}}, "saml/idp depends on scim/store"},
		{"bridge imports server", []pkg{{Path: "bridge", Deps: []string{"scim/server"}}}, "bridge depends on scim/server"},
		{"bridge state backend outside cmd", []pkg{{Path: "bridge", Deps: []string{"bridge/state/redis"}}}, "bridge depends on backend bridge/state/redis"},
		{"sqlstore outside backends", []pkg{{Path: "scim/server", Imports: []string{"scim/store/internal/sqlstore"}}}, "belongs to the store backends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(violations(tt.pkgs), "\n")
			if !strings.Contains(got, tt.want) {
				t.Fatalf("violations = %q, want one containing %q", got, tt.want)
			}
		})
	}
	ok := []pkg{
		{Path: "cmd/connect", Imports: []string{"scim/hub", "scim/store/sqlite"}, Deps: []string{"scim/hub", "scim/store/sqlite", "scim/store/internal/sqlstore"}},
		{Path: "scim/store/sqlite", Imports: []string{"scim/store", "scim/store/internal/sqlstore"}, Deps: []string{"scim/store", "scim/store/internal/sqlstore"}},
		{Path: "scim/store/storetest", Imports: []string{"scim/store"}, Deps: []string{"scim/store"}},
		{Path: "scim", Std: true},
	}
	if v := violations(ok); len(v) > 0 {
		t.Fatalf("a legal graph has violations: %q", v)
	}
}
