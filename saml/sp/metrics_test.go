package sp

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// exposition renders reg's metrics as stable text: HELP, TYPE, counters, and a
// histogram's sample count (its buckets hold timings).
func exposition(t *testing.T, f *fixture) string {
	t.Helper()
	mfs, err := f.regs[0].Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", mf.GetName(), mf.GetHelp(), mf.GetName(), strings.ToLower(mf.GetType().String()))
		var lines []string
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			lbl := ""
			if len(ls) > 0 {
				lbl = "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				lines = append(lines, fmt.Sprintf("%s%s %v", mf.GetName(), lbl, m.GetCounter().GetValue()))
			case m.GetHistogram() != nil:
				lines = append(lines, fmt.Sprintf("%s_count%s %v", mf.GetName(), lbl, m.GetHistogram().GetSampleCount()))
			}
		}
		sort.Strings(lines)
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}

// TestMetricsGolden: the metric names, help, labels and what one login, one
// refused response and a few checks count (go test -run MetricsGolden -update
// rewrites testdata/metrics.golden).
func TestMetricsGolden(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	b := f.browser()
	f.auth(b) // 401
	f.hubLogin(b, "alice", "alice-pw")
	f.sso(b, "/") // success
	f.auth(b)     // 202
	f.auth(b)     // 202
	action, fields := f.startSSO(b, "/")
	fields.Set("SAMLResponse", "bm90IHhtbA==") // "not xml"
	b.post(action, fields, false)              // invalid
	req, _ := http.NewRequest("GET", f.srv.URL+PathLogout, nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	b.do(req, true) // single logout
	got := exposition(t, f)
	path := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("metrics differ from %s (-update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}
