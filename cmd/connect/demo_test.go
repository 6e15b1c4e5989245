package main

import (
	"bufio"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// demoProcess is a running `connect demo`.
type demoProcess struct {
	cmd              *exec.Cmd
	site, hub, token string
	bridgeDSN        string
	mu               sync.Mutex
	out              strings.Builder
	done             chan error
}

func (d *demoProcess) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// startDemo runs `connect demo` on free ports and reads what it prints until
// "Press Ctrl-C to stop.".
func startDemo(t *testing.T, args ...string) *demoProcess {
	t.Helper()
	d := &demoProcess{cmd: exec.Command(binary, append([]string{"demo", "--listen", "127.0.0.1:0", "--site-listen", "127.0.0.1:0"}, args...)...), done: make(chan error, 1)}
	dieWithTest(d.cmd)
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = d.cmd.Stdout // one pipe: the log and the banner in order
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("connect demo printed:\n%s", d.output())
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.out.WriteString(line + "\n")
			d.mu.Unlock()
			f := strings.Fields(line)
			switch {
			case len(f) >= 2 && f[0] == "Site":
				d.site = strings.TrimSuffix(f[1], "/")
			case len(f) >= 2 && f[0] == "Hub":
				d.hub = f[1]
			case len(f) >= 5 && f[0] == "SCIM" && f[3] == "token":
				d.token = strings.TrimSuffix(f[4], ")")
			case len(f) >= 6 && f[0] == "connect" && f[3] == "list" && f[4] == "--store":
				d.bridgeDSN = f[5]
			case line == "Press Ctrl-C to stop.":
				close(ready)
			}
		}
		d.done <- d.cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-d.done:
		d.done <- err
		t.Fatalf("connect demo exited: %v\n%s", err, d.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("connect demo not ready after 60 s:\n%s", d.output())
	}
	if d.site == "" || d.hub == "" || d.token == "" || d.bridgeDSN == "" {
		t.Fatalf("connect demo did not print the site, hub, token and bridge store:\n%s", d.output())
	}
	return d
}

// interrupt sends SIGINT (Ctrl-C) and returns how long the demo took to exit.
func (d *demoProcess) interrupt(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("connect demo exited with %v after Ctrl-C:\n%s", err, d.output())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("connect demo did not stop 10 s after Ctrl-C:\n%s", d.output())
	}
	return time.Since(start)
}

// browser is a cookie-jar HTTP client that follows redirects, as a person's
// browser does (without JavaScript: the auto-posting forms are posted by
// hand).
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 15 * time.Second}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(body)
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	formRE    = regexp.MustCompile(`(?s)<form[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>`)
	inputRE   = regexp.MustCompile(`<input[^>]*>`)
	attrRE    = regexp.MustCompile(`\b(name|value)="([^"]*)"`)
	hubLinkRE = regexp.MustCompile(`<a class="hub"[^>]*href="([^"]*)"[^>]*>([^<]*)</a>`)
	userRE    = regexp.MustCompile(`<code id="user">([^<]*)</code>`)
)

// form returns the first form of page whose fields include field: its action
// resolved against base, and its fields.
func form(t *testing.T, base *url.URL, page, field string) (string, url.Values) {
	t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(page, -1) {
		vals := url.Values{}
		for _, in := range inputRE.FindAllString(m[2], -1) {
			var name, value string
			for _, a := range attrRE.FindAllStringSubmatch(in, -1) {
				if a[1] == "name" {
					name = html.UnescapeString(a[2])
				} else {
					value = html.UnescapeString(a[2])
				}
			}
			if name != "" {
				vals.Set(name, value)
			}
		}
		if _, ok := vals[field]; !ok {
			continue
		}
		action, err := base.Parse(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		return action.String(), vals
	}
	t.Fatalf("no form with %q at %s:\n%s", field, base, page)
	return "", nil
}

// demoLogin goes from the site's front page to the hub's login form: the
// redirect to the bridge's login page and its hub button.
func demoLogin(t *testing.T, b *browser, d *demoProcess) (*http.Response, string) {
	t.Helper()
	resp, page := b.get(d.site + "/courses?id=7")
	if resp.Request.URL.Path != "/login" || resp.Request.URL.Query().Get("rd") != "/courses?id=7" {
		t.Fatalf("the protected page sent the browser to %s, want the bridge's /login?rd=/courses?id=7", resp.Request.URL)
	}
	m := hubLinkRE.FindStringSubmatch(page)
	if m == nil || html.UnescapeString(m[2]) != "Log in using your account on: "+demoHubName {
		t.Fatalf("the bridge's login page has no hub button:\n%s", page)
	}
	link, _ := resp.Request.URL.Parse(html.UnescapeString(m[1]))
	resp, page = b.get(link.String())
	if !strings.HasPrefix(resp.Request.URL.String(), d.hub+"/") || !strings.Contains(page, `name="password"`) {
		t.Fatalf("the hub button led to %s, not the hub's login form:\n%s", resp.Request.URL, page)
	}
	return resp, page
}

// hubSubmit posts the hub's login form with the credentials.
func hubSubmit(t *testing.T, b *browser, resp *http.Response, page, user, pw string) (*http.Response, string) {
	t.Helper()
	action, fields := form(t, resp.Request.URL, page, "password")
	fields.Set("username", user)
	fields.Set("password", pw)
	return b.post(action, fields)
}

func TestDemo(t *testing.T) {
	d := startDemo(t)

	t.Run("login through the hub", func(t *testing.T) {
		b := newBrowser(t)
		resp, page := demoLogin(t, b, d)
		// A wrong password: the hub's generic message, no way on.
		resp, page = hubSubmit(t, b, resp, page, "alice", "wrong-password")
		if !strings.Contains(page, "Login failed") || strings.Contains(page, "SAMLResponse") {
			t.Fatalf("wrong password: %d\n%s", resp.StatusCode, page)
		}
		resp, page = hubSubmit(t, b, resp, page, "alice", demoPassword)
		acs, fields := form(t, resp.Request.URL, page, "SAMLResponse")
		if !strings.HasPrefix(acs, d.site+"/") {
			t.Fatalf("the hub answers to %s, not the demo site", acs)
		}
		resp, page = b.post(acs, fields)
		m := userRE.FindStringSubmatch(page)
		if resp.StatusCode != http.StatusOK || m == nil || !strings.HasPrefix(m[1], "tc") {
			t.Fatalf("after login: %d at %s, want the protected page with the tc… account:\n%s", resp.StatusCode, resp.Request.URL, page)
		}
		if resp.Request.URL.RequestURI() != "/courses?id=7" {
			t.Errorf("after login at %s, want the page first asked for", resp.Request.URL)
		}
		for _, want := range []string{"Alice Archer", "alice@example.org", "Staff", demoCourse} {
			if !strings.Contains(page, want) {
				t.Errorf("the protected page lacks %q:\n%s", want, page)
			}
		}
		// The account is the bridge's, made by the first sync.
		stdout, errOut, code := runCLI(t, "bridge", "users", "list", "--store", d.bridgeDSN)
		if code != 0 || !strings.Contains(stdout, m[1]) {
			t.Errorf("bridge users list (%d) lacks %s:\n%s%s", code, m[1], stdout, errOut)
		}
		// Another page: no login again.
		resp, page = b.get(d.site + "/other")
		if resp.Request.URL.Path != "/other" || !strings.Contains(page, m[1]) {
			t.Fatalf("second page: %s\n%s", resp.Request.URL, page)
		}
	})

	t.Run("a student is refused", func(t *testing.T) {
		b := newBrowser(t)
		resp, page := demoLogin(t, b, d)
		resp, page = hubSubmit(t, b, resp, page, "carol", demoPassword)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "not allowed") || strings.Contains(page, "SAMLResponse") {
			t.Fatalf("carol: %d\n%s", resp.StatusCode, page)
		}
		resp, _ = b.get(d.site + "/")
		if resp.Request.URL.Path != "/login" {
			t.Fatalf("carol reached %s", resp.Request.URL)
		}
	})

	t.Run("a user suspended on the hub loses access", func(t *testing.T) {
		b := newBrowser(t)
		resp, page := demoLogin(t, b, d)
		resp, page = hubSubmit(t, b, resp, page, "bob", demoPassword)
		acs, fields := form(t, resp.Request.URL, page, "SAMLResponse")
		if resp, page = b.post(acs, fields); !userRE.MatchString(page) {
			t.Fatalf("bob: %d %s", resp.StatusCode, page)
		}
		// Suspend bob on the hub; the bridge's sync brings it over and its
		// forward auth answers 403 (within its 5 s cache of the answer).
		req, _ := http.NewRequest(http.MethodGet, d.hub+"/scim/v2/Users?filter="+url.QueryEscape(`userName eq "bob"`), nil)
		req.Header.Set("Authorization", "Bearer "+d.token)
		_, list := newBrowser(t).do(req)
		id := regexp.MustCompile(`"id":"([^"]+)"`).FindStringSubmatch(list)
		if id == nil {
			t.Fatalf("no bob on the hub: %s", list)
		}
		req, _ = http.NewRequest(http.MethodPatch, d.hub+"/scim/v2/Users/"+id[1], strings.NewReader(
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`))
		req.Header.Set("Authorization", "Bearer "+d.token)
		req.Header.Set("Content-Type", "application/scim+json")
		if resp, body := newBrowser(t).do(req); resp.StatusCode != http.StatusOK {
			t.Fatalf("suspend bob: %d %s", resp.StatusCode, body)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, page = b.get(d.site + "/")
			if resp.StatusCode == http.StatusForbidden {
				break
			}
			if resp.StatusCode != http.StatusOK || !userRE.MatchString(page) || time.Now().After(deadline) {
				t.Fatalf("suspended bob still gets %d at %s:\n%s", resp.StatusCode, resp.Request.URL, page)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if !strings.Contains(page, "No access") || userRE.MatchString(page) {
			t.Fatalf("403 page:\n%s", page)
		}
	})

	t.Run("forged identity headers are ignored", func(t *testing.T) {
		b := newBrowser(t)
		b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		req, _ := http.NewRequest(http.MethodGet, d.site+"/", nil)
		req.Header.Set("X-Connect-User", "admin")
		resp, _ := b.do(req)
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Fatalf("without a session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	took := d.interrupt(t)
	t.Logf("stopped %s after Ctrl-C", took)
	if took > 5*time.Second {
		t.Errorf("Ctrl-C took %s, want a few seconds at most", took)
	}
}

func TestDemoDir(t *testing.T) {
	dir := t.TempDir()
	d := startDemo(t, "--dir", dir)
	d.interrupt(t)
	for _, f := range []string{"hub.db", "bridge.db"} {
		if _, err := os.Stat(dir + "/" + f); err != nil {
			t.Errorf("--dir: %s not kept: %v", f, err)
		}
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		// The demo seeds new stores.
		{"used dir", []string{"--dir", dir}, "not empty"},
		// Plain http and demo passwords stay on this machine.
		{"hub off loopback", []string{"--listen", "0.0.0.0:0"}, "not a loopback address"},
		{"site off loopback", []string{"--site-listen", "192.0.2.1:8081"}, "not a loopback address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"demo", "--listen", "127.0.0.1:0", "--site-listen", "127.0.0.1:0"}, tt.args...)
			_, errOut, code := runCLI(t, args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("= %d %q, want an error with %q", code, errOut, tt.want)
			}
		})
	}
}
