package deploytest

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/connectsso/connect/internal/testenv"
)

// rule is one alerting or recording rule of deploy/prometheus.
type rule struct {
	File, Group, Alert, Record, Expr string
}

func rulesFiles(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(deployPath(tb, "prometheus", "*.rules.yml"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) < 2 {
		tb.Fatalf("want the hub and bridge rules files in deploy/prometheus, found %v", files)
	}
	return files
}

func loadRules(tb testing.TB) []rule {
	tb.Helper()
	var out []rule
	for _, f := range rulesFiles(tb) {
		docs := yamlFile(tb, f)
		if len(docs) != 1 {
			tb.Fatalf("%s: want one YAML document, got %d", f, len(docs))
		}
		for _, g := range list(docs[0], "groups") {
			for _, r := range list(g, "rules") {
				out = append(out, rule{File: filepath.Base(f), Group: str(g, "name"), Alert: str(r, "alert"), Record: str(r, "record"), Expr: str(r, "expr")})
			}
		}
	}
	return out
}

func recordedNames(rules []rule) map[string]bool {
	m := map[string]bool{}
	for _, r := range rules {
		if r.Record != "" {
			m[r.Record] = true
		}
	}
	return m
}

// TestRulesReferenceExportedMetrics fails when a rule queries a metric, label
// or label value the code does not export: such an alert can never fire.
func TestRulesReferenceExportedMetrics(t *testing.T) {
	c := exported(t)
	rules := loadRules(t)
	recorded := recordedNames(rules)
	used := map[string]bool{}
	for _, r := range rules {
		name := r.Alert + r.Record
		if r.Expr == "" || name == "" {
			t.Errorf("%s: a rule without a name or expr", r.File)
			continue
		}
		for _, p := range c.checkExpr(r.Expr, recorded) {
			t.Errorf("%s %s: %s", r.File, name, p)
		}
		for _, tok := range mustLex(t, r.Expr) {
			if tok.kind == 'i' && strings.HasPrefix(tok.text, "connect_") {
				used[tok.text] = true
			}
		}
	}
	for _, want := range []string{"connect_hub_scim_requests_total", "connect_bridge_sync_held_plans"} {
		if !used[want] {
			t.Errorf("no rule queries %s", want)
		}
	}
}

func mustLex(tb testing.TB, expr string) []promToken {
	tb.Helper()
	toks, err := lexPromQL(expr)
	if err != nil {
		tb.Fatal(err)
	}
	return toks
}

// TestPromtoolChecksRulesAndConfig runs Prometheus's own checker over the
// rules and the example configuration (which loads them).
func TestPromtoolChecksRulesAndConfig(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	dir := deployPath(t, "prometheus")
	args := append([]string{"check", "rules"}, rulesFiles(t)...)
	if out, err := runCmd(dir, nil, promtool, args...); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := runCmd(dir, nil, promtool, "check", "config", "prometheus.example.yml"); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

// TestPromtoolRuleUnitTests runs deploy/prometheus/tests: each alert fires on
// the series that should trigger it, with its labels and annotations, and
// stays quiet on healthy ones.
func TestPromtoolRuleUnitTests(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	tests := globFiles(t, deployPath(t, "prometheus", "tests"), ".test.yml")
	if len(tests) == 0 {
		t.Fatal("no promtool unit tests in deploy/prometheus/tests")
	}
	args := append([]string{"test", "rules"}, tests...)
	if out, err := runCmd(deployPath(t, "prometheus", "tests"), nil, promtool, args...); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// TestEveryAlertIsUnitTested requires, for every alert, a promtool test case
// where it fires and one where it is expected to stay quiet.
func TestEveryAlertIsUnitTested(t *testing.T) {
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range globFiles(t, deployPath(t, "prometheus", "tests"), ".test.yml") {
		for _, doc := range yamlFile(t, f) {
			for _, tc := range list(doc, "tests") {
				for _, at := range list(tc, "alert_rule_test") {
					name := str(at, "alertname")
					if len(list(at, "exp_alerts")) > 0 {
						fires[name] = true
					} else {
						quiet[name] = true
					}
				}
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if !fires[r.Alert] {
			t.Errorf("%s: no promtool test where it fires", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("%s: no promtool test where it stays quiet", r.Alert)
		}
	}
}

// TestPrometheusRuleInSync keeps deploy/kubernetes/monitoring/prometheusrules.yaml
// (PrometheusRule objects for the Prometheus Operator) equal to the plain rules
// files. Run with -update to regenerate it.
func TestPrometheusRuleInSync(t *testing.T) {
	var want bytes.Buffer
	want.WriteString("# Generated from deploy/prometheus/*.rules.yml by\n" +
		"#   go test ./internal/deploytest -run PrometheusRule -update\n" +
		"# Do not edit: change the rules files and regenerate. Add the labels your\n" +
		"# Prometheus Operator's ruleSelector expects in an overlay.\n")
	for i, f := range rulesFiles(t) {
		var spec yaml.Node
		if err := yaml.Unmarshal([]byte(readFile(t, f)), &spec); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".rules.yml")
		obj := map[string]any{
			"apiVersion": "monitoring.coreos.com/v1",
			"kind":       "PrometheusRule",
			"metadata": map[string]any{
				"name":   name,
				"labels": map[string]any{"app.kubernetes.io/name": name},
			},
			"spec": stripComments(spec.Content[0]),
		}
		if i > 0 {
			want.WriteString("---\n")
		}
		enc := yaml.NewEncoder(&want)
		enc.SetIndent(2)
		if err := enc.Encode(obj); err != nil {
			t.Fatal(err)
		}
		enc.Close()
	}
	target := deployPath(t, "kubernetes", "monitoring", "prometheusrules.yaml")
	if *update {
		if err := os.WriteFile(target, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := yamlFile(t, target)
	exp := yamlDocs(t, "generated", want.Bytes())
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("%s is out of date with deploy/prometheus/*.rules.yml: run go test ./internal/deploytest -run PrometheusRule -update", target)
	}
}

// stripComments drops the rules file's comments, which describe loading it
// as a plain file.
func stripComments(n *yaml.Node) *yaml.Node {
	c := *n
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	c.Content = nil
	for _, ch := range n.Content {
		c.Content = append(c.Content, stripComments(ch))
	}
	return &c
}
