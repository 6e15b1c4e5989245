package deploytest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// metricDef is one metric the Go code registers.
type metricDef struct {
	Name        string
	Type        string // counter, gauge, histogram, summary or untyped
	Labels      []string
	LabelsKnown bool   // false when the label list is not a literal
	Where       string // file:line of the definition
}

// catalogue is what the code exports: series names (a histogram's _bucket,
// _sum and _count included) and every string literal, against which label
// values in queries are checked.
type catalogue struct {
	series   map[string]*metricDef
	literals map[string]bool
}

var (
	catOnce sync.Once
	cat     *catalogue
	catErr  error
)

// exported scans every non-test .go file of the module once.
func exported(tb testing.TB) *catalogue {
	tb.Helper()
	catOnce.Do(func() { cat, catErr = scanMetrics(repoRoot(tb)) })
	if catErr != nil {
		tb.Fatal(catErr)
	}
	return cat
}

var optsTypes = map[string]string{
	"CounterOpts":   "counter",
	"GaugeOpts":     "gauge",
	"HistogramOpts": "histogram",
	"SummaryOpts":   "summary",
}

// scanMetrics finds metric definitions with go/parser: composite literals of
// prometheus.{Counter,Gauge,Histogram,Summary}Opts (their Namespace,
// Subsystem and Name, with string constants resolved) and the label list of
// the New…Vec call they are passed to, plus prometheus.NewDesc.
func scanMetrics(root string) (*catalogue, error) {
	c := &catalogue{series: map[string]*metricDef{}, literals: map[string]bool{}}
	fset := token.NewFileSet()
	byDir := map[string][]*ast.File{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if p != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		byDir[filepath.Dir(p)] = append(byDir[filepath.Dir(p)], f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, files := range byDir {
		consts := map[string]string{}
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BasicLit:
					if s, err := strconv.Unquote(n.Value); err == nil && n.Kind == token.STRING {
						c.literals[s] = true
					}
				case *ast.ValueSpec:
					for i, name := range n.Names {
						if i < len(n.Values) {
							if s, ok := stringLit(n.Values[i]); ok {
								consts[name.Name] = s
							}
						}
					}
				}
				return true
			})
		}
		resolve := func(e ast.Expr) (string, bool) {
			if s, ok := stringLit(e); ok {
				return s, true
			}
			if id, ok := e.(*ast.Ident); ok {
				s, ok := consts[id.Name]
				return s, ok
			}
			return "", false
		}
		add := func(def *metricDef) {
			suffixes := map[string][]string{
				"histogram": {"_bucket", "_sum", "_count"},
				"summary":   {"", "_sum", "_count"},
				"untyped":   {"", "_bucket", "_sum", "_count"},
			}[def.Type]
			if suffixes == nil {
				suffixes = []string{""}
			}
			for _, s := range suffixes {
				c.series[def.Name+s] = def
			}
		}
		for _, f := range files {
			seen := map[*ast.CompositeLit]bool{}
			var lits []*ast.CompositeLit
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					fn := callName(n.Fun)
					if fn == "NewDesc" && len(n.Args) >= 3 {
						name, ok := resolve(n.Args[0])
						if !ok {
							problems = append(problems, fmt.Sprintf("%s: NewDesc name is not a string constant", fset.Position(n.Pos())))
							return true
						}
						labels, known := stringList(n.Args[2])
						add(&metricDef{Name: name, Type: "untyped", Labels: labels, LabelsKnown: known, Where: fset.Position(n.Pos()).String()})
						return true
					}
					if len(n.Args) == 0 || !strings.HasPrefix(fn, "New") {
						return true
					}
					lit, ok := n.Args[0].(*ast.CompositeLit)
					if !ok || optsType(lit) == "" {
						return true
					}
					seen[lit] = true
					def, err := optsDef(fset, lit, resolve)
					if err != nil {
						problems = append(problems, err.Error())
						return true
					}
					if strings.HasSuffix(fn, "Vec") && len(n.Args) >= 2 {
						def.Labels, def.LabelsKnown = stringList(n.Args[1])
					} else {
						def.LabelsKnown = true
					}
					def.Labels = append(def.Labels, constLabels(lit)...)
					add(def)
				case *ast.CompositeLit:
					if optsType(n) != "" {
						lits = append(lits, n)
					}
				}
				return true
			})
			// Opts built apart from their New… call: the name is known, the
			// labels are not.
			for _, lit := range lits {
				if seen[lit] {
					continue
				}
				def, err := optsDef(fset, lit, resolve)
				if err != nil {
					problems = append(problems, err.Error())
					continue
				}
				if _, dup := c.series[def.Name]; !dup {
					add(def)
				}
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("metric definitions the scanner cannot read (make names string constants):\n%s", strings.Join(problems, "\n"))
	}
	return c, nil
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

func stringList(e ast.Expr) ([]string, bool) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, false
	}
	var out []string
	for _, el := range lit.Elts {
		s, ok := stringLit(el)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func callName(fun ast.Expr) string {
	switch f := fun.(type) {
	case *ast.SelectorExpr:
		return f.Sel.Name
	case *ast.Ident:
		return f.Name
	}
	return ""
}

func optsType(lit *ast.CompositeLit) string {
	sel, ok := lit.Type.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
		return ""
	}
	return optsTypes[sel.Sel.Name]
}

func optsDef(fset *token.FileSet, lit *ast.CompositeLit, resolve func(ast.Expr) (string, bool)) (*metricDef, error) {
	parts := map[string]string{}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, _ := kv.Key.(*ast.Ident)
		if key == nil || (key.Name != "Namespace" && key.Name != "Subsystem" && key.Name != "Name") {
			continue
		}
		s, ok := resolve(kv.Value)
		if !ok {
			return nil, fmt.Errorf("%s: metric %s is not a string constant", fset.Position(kv.Pos()), key.Name)
		}
		parts[key.Name] = s
	}
	var name []string
	for _, k := range []string{"Namespace", "Subsystem", "Name"} {
		if parts[k] != "" {
			name = append(name, parts[k])
		}
	}
	if parts["Name"] == "" {
		return nil, fmt.Errorf("%s: metric without a Name", fset.Position(lit.Pos()))
	}
	return &metricDef{Name: strings.Join(name, "_"), Type: optsType(lit), Where: fset.Position(lit.Pos()).String()}, nil
}

func constLabels(lit *ast.CompositeLit) []string {
	var out []string
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if key, _ := kv.Key.(*ast.Ident); key == nil || key.Name != "ConstLabels" {
			continue
		}
		if m, ok := kv.Value.(*ast.CompositeLit); ok {
			for _, e := range m.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					if s, ok := stringLit(kv.Key); ok {
						out = append(out, s)
					}
				}
			}
		}
	}
	return out
}

// --- PromQL references ----------------------------------------------------

// promToken is one lexeme of a PromQL expression.
type promToken struct {
	kind byte // 'i' identifier, 's' string, 'n' number or duration, 'p' punctuation
	text string
}

// lexPromQL splits a PromQL expression into the lexemes the reference check
// needs. It is not a parser: promtool checks the syntax.
func lexPromQL(expr string) ([]promToken, error) {
	var out []promToken
	for i := 0; i < len(expr); {
		ch := expr[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case ch == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case ch == '"' || ch == '\'' || ch == '`':
			j := i + 1
			for j < len(expr) && expr[j] != ch {
				if expr[j] == '\\' && ch != '`' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d in %q", i, expr)
			}
			s := expr[i : j+1]
			if ch == '\'' {
				s = `"` + strings.ReplaceAll(s[1:len(s)-1], `"`, `\"`) + `"`
			}
			v, err := strconv.Unquote(s)
			if err != nil {
				return nil, fmt.Errorf("string %s: %v", expr[i:j+1], err)
			}
			out = append(out, promToken{'s', v})
			i = j + 1
		case isIdentStart(ch):
			j := i
			for j < len(expr) && (isIdentStart(expr[j]) || expr[j] >= '0' && expr[j] <= '9') {
				j++
			}
			out = append(out, promToken{'i', expr[i:j]})
			i = j
		case ch >= '0' && ch <= '9' || ch == '.':
			j := i
			for j < len(expr) && (isIdentStart(expr[j]) && expr[j] != ':' || expr[j] >= '0' && expr[j] <= '9' || expr[j] == '.' ||
				(expr[j] == '-' || expr[j] == '+') && (expr[j-1] == 'e' || expr[j-1] == 'E')) {
				j++
			}
			out = append(out, promToken{'n', expr[i:j]})
			i = j
		default:
			if i+1 < len(expr) {
				two := expr[i : i+2]
				if two == "=~" || two == "!~" || two == "!=" || two == "==" || two == ">=" || two == "<=" {
					out = append(out, promToken{'p', two})
					i += 2
					continue
				}
			}
			out = append(out, promToken{'p', string(ch)})
			i++
		}
	}
	return out, nil
}

func isIdentStart(ch byte) bool {
	return ch == '_' || ch == ':' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z'
}

// grouping keywords take a parenthesised label list.
var groupingWords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// targetLabels are added by Prometheus, not by the code.
var targetLabels = map[string]bool{"job": true, "instance": true}

// identValue matches label values that name something (result="failed"), which
// must then appear as a string in the code; numbers and regular expressions
// are not checked.
var identValue = regexp.MustCompile(`^[a-z][a-z_]*(\|[a-z][a-z_]*)*$`)

// checkExpr reports every reference of expr to a connect_ series, label or
// label value that the code does not export, and every recording-rule name
// (level:metric:operation) that recorded does not define.
func (c *catalogue) checkExpr(expr string, recorded map[string]bool) []string {
	toks, err := lexPromQL(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	var defs []*metricDef
	var groupings []string
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind != 'i' {
			continue
		}
		next := func(k int) promToken {
			if i+k < len(toks) {
				return toks[i+k]
			}
			return promToken{}
		}
		if groupingWords[t.text] && next(1).text == "(" {
			j := i + 2
			for ; j < len(toks) && toks[j].text != ")"; j++ {
				if toks[j].kind == 'i' {
					groupings = append(groupings, toks[j].text)
				}
			}
			i = j
			continue
		}
		if next(1).text == "(" { // a function or aggregation
			continue
		}
		var def *metricDef
		switch {
		case strings.Contains(t.text, ":"):
			if !recorded[t.text] {
				problems = append(problems, fmt.Sprintf("%s: no recording rule defines it", t.text))
			}
		case strings.HasPrefix(t.text, "connect_"):
			def = c.series[t.text]
			if def == nil {
				problems = append(problems, fmt.Sprintf("%s: the code exports no such series", t.text))
			} else {
				defs = append(defs, def)
			}
		}
		if next(1).text != "{" {
			continue
		}
		j := i + 2
		for ; j+2 < len(toks) && toks[j].text != "}"; j++ {
			if toks[j].kind != 'i' || toks[j+1].kind != 'p' || toks[j+2].kind != 's' {
				continue
			}
			label, op, value := toks[j].text, toks[j+1].text, toks[j+2].text
			j += 2
			if def == nil || !def.LabelsKnown || targetLabels[label] {
				continue
			}
			isBucket := def.Type == "histogram" && strings.HasSuffix(t.text, "_bucket")
			if !slices.Contains(def.Labels, label) && !(label == "le" && isBucket) {
				problems = append(problems, fmt.Sprintf("%s{%s}: no such label (it has %s)", t.text, label, strings.Join(def.Labels, ", ")))
				continue
			}
			if (op == "=" || op == "=~") && identValue.MatchString(value) {
				for _, v := range strings.Split(value, "|") {
					if !c.literals[v] {
						problems = append(problems, fmt.Sprintf("%s{%s=%q}: the code never names the value %q", t.text, label, value, v))
					}
				}
			}
		}
		i = j
	}
	if len(defs) > 0 {
		for _, g := range groupings {
			if targetLabels[g] || g == "le" {
				continue
			}
			found := false
			for _, d := range defs {
				if !d.LabelsKnown || slices.Contains(d.Labels, g) {
					found = true
				}
			}
			if !found {
				problems = append(problems, fmt.Sprintf("by/without/on (%s): no referenced connect_ metric has that label", g))
			}
		}
	}
	return problems
}

// TestMetricScannerFindsKnownDefinitions keeps the scanner honest: it must see
// metrics defined in different ways across the code base, with their types
// and labels.
func TestMetricScannerFindsKnownDefinitions(t *testing.T) {
	c := exported(t)
	for _, tt := range []struct {
		series, typ string
		labels      []string
	}{
		{"connect_hub_scim_requests_total", "counter", []string{"resource", "method", "code"}},
		{"connect_hub_scim_request_duration_seconds_bucket", "histogram", []string{"resource", "method"}},
		{"connect_hub_journal_trimmed_total", "counter", nil},
		{"connect_hub_directory_objects", "gauge", []string{"kind"}},
		{"connect_hub_saml_logins_total", "counter", []string{"result"}},
	} {
		t.Run(tt.series, func(t *testing.T) {
			d := c.series[tt.series]
			if d == nil {
				t.Fatalf("not found; the scanner saw %d series", len(c.series))
			}
			if d.Type != tt.typ || !d.LabelsKnown || !slices.Equal(d.Labels, tt.labels) {
				t.Errorf("got %s %v (known %v) at %s, want %s %v", d.Type, d.Labels, d.LabelsKnown, d.Where, tt.typ, tt.labels)
			}
		})
	}
	if c.series["connect_hub_scim_request_duration_seconds"] != nil {
		t.Error("a histogram's base name is not a series")
	}
}

// TestCheckExprCatchesBadReferences shows the reference check failing where a
// dashboard or rule would show nothing (or alert on nothing).
func TestCheckExprCatchesBadReferences(t *testing.T) {
	c := exported(t)
	recorded := map[string]bool{"job:connect_hub_scim_requests:rate5m": true}
	for _, tt := range []struct {
		name, expr string
		want       string // substring of the one problem; "" for none
	}{
		{"good rate", `sum by (job, code) (rate(connect_hub_scim_requests_total{job="connect-hub", code=~"5.."}[5m]))`, ""},
		{"good quantile", `histogram_quantile(0.9, sum by (le, resource) (rate(connect_hub_scim_request_duration_seconds_bucket{instance=~"$i"}[5m])))`, ""},
		{"good value list", `connect_hub_saml_logins_total{result=~"bad_credentials|locked"} > 0`, ""},
		{"good recorded", `job:connect_hub_scim_requests:rate5m > 1`, ""},
		{"unknown metric", `rate(connect_hub_scim_request_total[5m])`, "exports no such series"},
		{"histogram base name", `connect_hub_scim_request_duration_seconds{resource="Users"}`, "exports no such series"},
		{"bucket of a counter", `connect_hub_scim_requests_total_bucket`, "exports no such series"},
		{"unknown label", `connect_hub_scim_requests_total{status="500"}`, "no such label"},
		{"le on a counter", `connect_hub_scim_requests_total{le="1"}`, "no such label"},
		{"unknown value", `connect_hub_directory_objects{kind="userz"}`, `never names the value "userz"`},
		{"unknown value in a list", `connect_hub_saml_logins_total{result=~"success|lockd"}`, `"lockd"`},
		{"unknown grouping label", `sum by (server) (connect_hub_scim_requests_total)`, "(server)"},
		{"undefined recording rule", `job:connect_hub_logins:rate5m`, "no recording rule"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := c.checkExpr(tt.expr, recorded)
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("problems %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("problems %q, want one containing %q", got, tt.want)
			}
		})
	}
}
