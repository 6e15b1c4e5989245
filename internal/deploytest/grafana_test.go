package deploytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/connectsso/connect/internal/testenv"
)

// dashQuery is one PromQL query of a dashboard: a panel target or the
// selector inside a label_values() variable query.
type dashQuery struct {
	Where, Expr string
	Label       string // label_values(…, label): the label asked for
}

type dashboard struct {
	file      string
	raw       map[string]any
	panels    []map[string]any // rows and their nested panels, flattened
	variables map[string]bool
	queries   []dashQuery
}

func dashboards(tb testing.TB) []*dashboard {
	tb.Helper()
	files := globFiles(tb, deployPath(tb, "grafana"), ".json")
	if len(files) == 0 {
		tb.Fatal("no dashboards in deploy/grafana")
	}
	var out []*dashboard
	for _, f := range files {
		d := &dashboard{file: filepath.Base(f), variables: map[string]bool{}}
		if err := json.Unmarshal([]byte(readFile(tb, f)), &d.raw); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		var walk func([]any)
		walk = func(ps []any) {
			for _, p := range ps {
				m, ok := p.(map[string]any)
				if !ok {
					tb.Fatalf("%s: a panel is not an object", f)
				}
				d.panels = append(d.panels, m)
				walk(list(m, "panels"))
			}
		}
		walk(list(d.raw, "panels"))
		for _, v := range list(d.raw, "templating", "list") {
			name := str(v, "name")
			d.variables[name] = true
			q := str(v, "query", "query")
			if q == "" {
				q = str(v, "query")
			}
			if str(v, "type") == "query" {
				m := labelValuesRE.FindStringSubmatch(strings.TrimSpace(q))
				if m == nil {
					tb.Fatalf("%s: variable %s: want label_values(selector, label), got %q", f, name, q)
				}
				d.queries = append(d.queries, dashQuery{Where: "variable " + name, Expr: m[1], Label: m[2]})
			}
		}
		for _, p := range d.panels {
			for _, tg := range list(p, "targets") {
				d.queries = append(d.queries, dashQuery{Where: fmt.Sprintf("panel %q target %s", str(p, "title"), str(tg, "refId")), Expr: str(tg, "expr")})
			}
		}
		out = append(out, d)
	}
	return out
}

var (
	labelValuesRE = regexp.MustCompile(`^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)
	grafanaVarRE  = regexp.MustCompile(`\$\{?([A-Za-z0-9_]+)(?::[a-z]+)?\}?`)
	// Grafana's own variables that queries may use.
	grafanaBuiltins = map[string]bool{"__rate_interval": true, "__interval": true, "__range": true, "__range_s": true, "__interval_ms": true}
)

// substituteVars turns a dashboard query into plain PromQL: interval variables
// become durations, template variables a regular expression.
func substituteVars(expr string) string {
	return grafanaVarRE.ReplaceAllStringFunc(expr, func(m string) string {
		name := grafanaVarRE.FindStringSubmatch(m)[1]
		if grafanaBuiltins[name] {
			if name == "__range_s" || name == "__interval_ms" {
				return "300"
			}
			return "5m"
		}
		return ".*"
	})
}

// TestDashboardStructure checks what Grafana needs to import and lay out the
// dashboard: unique panel ids, a grid position inside the 24 columns without
// overlaps, the datasource variable on every query, refIds, and defined
// template variables.
func TestDashboardStructure(t *testing.T) {
	for _, d := range dashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			if str(d.raw, "uid") == "" || str(d.raw, "title") == "" {
				t.Error("dashboard needs a uid and a title")
			}
			if !d.variables["datasource"] {
				t.Error("no datasource variable: the dashboard would be tied to one Prometheus")
			}
			ids := map[float64]bool{}
			type cell struct{ x, y int }
			taken := map[cell]string{}
			for _, p := range d.panels {
				title := str(p, "title")
				id, _ := path(p, "id").(float64)
				if id == 0 || ids[id] {
					t.Errorf("panel %q: id %v missing or repeated", title, id)
				}
				ids[id] = true
				gp := mapping(p, "gridPos")
				x, y, w, h := num(gp, "x"), num(gp, "y"), num(gp, "w"), num(gp, "h")
				if w <= 0 || h <= 0 || x < 0 || x+w > 24 {
					t.Errorf("panel %q: gridPos %v outside the 24-column grid", title, gp)
				}
				overlaps := map[string]bool{}
				for i := x; i < x+w; i++ {
					for j := y; j < y+h; j++ {
						if other, ok := taken[cell{i, j}]; ok && !overlaps[other] {
							overlaps[other] = true
							t.Errorf("panel %q overlaps %q at (%d,%d)", title, other, i, j)
						}
						taken[cell{i, j}] = title
					}
				}
				if str(p, "type") == "row" {
					continue
				}
				if title == "" || str(p, "description") == "" {
					t.Errorf("panel %v: needs a title and a description", id)
				}
				if str(p, "datasource", "uid") != "${datasource}" {
					t.Errorf("panel %q: datasource %v, want ${datasource}", title, path(p, "datasource"))
				}
				targets := list(p, "targets")
				if len(targets) == 0 {
					t.Errorf("panel %q: no queries", title)
				}
				refs := map[string]bool{}
				for _, tg := range targets {
					ref := str(tg, "refId")
					if ref == "" || refs[ref] {
						t.Errorf("panel %q: refId %q missing or repeated", title, ref)
					}
					refs[ref] = true
					if str(tg, "datasource", "uid") != "${datasource}" || strings.TrimSpace(str(tg, "expr")) == "" {
						t.Errorf("panel %q target %s: needs the ${datasource} and an expr", title, ref)
					}
				}
			}
			for _, q := range d.queries {
				for _, m := range grafanaVarRE.FindAllStringSubmatch(q.Expr, -1) {
					if !d.variables[m[1]] && !grafanaBuiltins[m[1]] {
						t.Errorf("%s: uses $%s, which the dashboard does not define", q.Where, m[1])
					}
				}
			}
		})
	}
}

func num(m map[string]any, k string) int {
	f, _ := m[k].(float64)
	return int(f)
}

// TestDashboardReferencesExportedMetrics fails when a panel or variable
// queries a metric, label or label value the code does not export: such a
// panel shows "No data" forever.
func TestDashboardReferencesExportedMetrics(t *testing.T) {
	c := exported(t)
	recorded := recordedNames(loadRules(t))
	for _, d := range dashboards(t) {
		used := map[string]bool{}
		for _, q := range d.queries {
			expr := substituteVars(q.Expr)
			for _, p := range c.checkExpr(expr, recorded) {
				t.Errorf("%s %s: %s", d.file, q.Where, p)
			}
			for _, tok := range mustLex(t, expr) {
				if tok.kind == 'i' && strings.HasPrefix(tok.text, "connect_") {
					used[tok.text] = true
					if q.Label != "" {
						if def := c.series[tok.text]; def != nil && def.LabelsKnown && !targetLabels[q.Label] && !contains(def.Labels, q.Label) {
							t.Errorf("%s %s: %s has no label %s", d.file, q.Where, tok.text, q.Label)
						}
					}
				}
			}
		}
		// The dashboard covers both processes.
		for _, want := range []string{"connect_hub_scim_requests_total", "connect_hub_saml_logins_total", "connect_bridge_sync_runs_total", "connect_bridge_forward_auth_total"} {
			if !used[want] {
				t.Errorf("%s: no panel queries %s", d.file, want)
			}
		}
	}
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// TestDashboardQueriesParse hands every panel query (variables substituted)
// to promtool as a recording rule, so that PromQL syntax errors fail here
// rather than on an operator's screen.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	for _, d := range dashboards(t) {
		var rules []map[string]any
		var where []string
		for _, q := range d.queries {
			rules = append(rules, map[string]any{"record": fmt.Sprintf("dashboard:query_%d", len(rules)), "expr": substituteVars(q.Expr)})
			where = append(where, q.Where)
		}
		b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "dashboard.rules.yml")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runCmd("", nil, promtool, "check", "rules", f); err != nil {
			for i, w := range where {
				where[i] = fmt.Sprintf("query_%d: %s", i, w)
			}
			t.Errorf("%s: promtool rejects a query: %v\n%s\n%s", d.file, err, out, strings.Join(where, "\n"))
		}
	}
}
