package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/connectsso/connect/internal/testenv"
)

// chromiumNames are the executables tried, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	testenv.Missing(tb, "chromium (one of %s) not on PATH", strings.Join(chromiumNames, ", "))
	return ""
}

// newBrowser starts headless Chromium for the test and returns its allocator
// context; every tab opened with newTab gets its own cookie jar.
func newBrowser(tb testing.TB) context.Context {
	tb.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(tb)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,PasswordManagerOnboarding,AutofillServerCommunication"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(820, 540),
	}
	ctx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	tb.Cleanup(cancel)
	// The first context starts the browser; tabs are made from it.
	bctx, bcancel := chromedp.NewContext(ctx, chromedp.WithErrorf(tb.Logf))
	tb.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// tab is one browser tab in a fresh browser context (its own cookies).
type tab struct {
	tb  testing.TB
	ctx context.Context
}

func newTab(tb testing.TB, browser context.Context) *tab {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	tb.Cleanup(cancel)
	// The first run opens the tab; it must not carry a timeout (its end would
	// close the tab).
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("open a tab: %v", err)
	}
	return &tab{tb: tb, ctx: ctx}
}

// run performs actions with a time limit and fails the test on error.
func (t *tab) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.tb.Fatalf("%s: %v\npage at %s:\n%s", what, err, t.location(), t.text())
	}
}

// location is the tab's current URL ("" when it cannot be read).
func (t *tab) location() string {
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// text is the visible text of the page.
func (t *tab) text() string {
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	return s
}

// open navigates to u and waits for the page's body.
func (t *tab) open(u string) {
	t.tb.Helper()
	t.run("open "+u, chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS("body")))
}

// waitFor waits until sel is visible.
func (t *tab) waitFor(sel string) {
	t.tb.Helper()
	t.run("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// click clicks sel (after it is visible) and waits for the next page's sel2.
func (t *tab) click(sel, next string) {
	t.tb.Helper()
	t.run("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)),
		chromedp.WaitVisible(chromedp.CSS(next)))
}

// fillAndSubmit types into the form fields (selector → value), clicks submit
// and waits for next.
func (t *tab) fillAndSubmit(fields map[string]string, submit, next string) {
	t.tb.Helper()
	var as []chromedp.Action[chromedp.Void]
	for sel, v := range fields {
		as = append(as, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SetValue(chromedp.CSS(sel), v))
	}
	as = append(as, chromedp.Click(chromedp.CSS(submit)), chromedp.WaitVisible(chromedp.CSS(next)))
	t.run("submit "+submit, as...)
}

// textOf returns the text of sel.
func (t *tab) textOf(sel string) string {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.tb.Fatalf("read %s: %v\npage at %s:\n%s", sel, err, t.location(), t.text())
	}
	return strings.TrimSpace(s)
}

// screenshot writes a PNG of the viewport to path.
func (t *tab) screenshot(path string) {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.tb.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.tb.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.tb.Fatal(err)
	}
	t.tb.Logf("screenshot %s (%d bytes)", path, len(png))
}

// mustContain fails when the page's text lacks want.
func (t *tab) mustContain(want string) {
	t.tb.Helper()
	if s := t.text(); !strings.Contains(s, want) {
		t.tb.Fatalf("page at %s lacks %q:\n%s", t.location(), want, s)
	}
}

// at fails unless the tab's URL starts with prefix.
func (t *tab) at(prefix string) {
	t.tb.Helper()
	if u := t.location(); !strings.HasPrefix(u, prefix) {
		t.tb.Fatalf("at %s, want %s…\n%s", u, prefix, t.text())
	}
}

func (t *tab) String() string { return fmt.Sprintf("tab at %s", t.location()) }
