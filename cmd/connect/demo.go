package main

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/sso"
	"github.com/connectsso/connect/saml/sp"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/hub"
	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/store"
)

// `connect demo`: the whole system in one process on loopback (DESIGN.md §2):
// a hub with sample people, one bridge connected to it by the real setup-secret
// handshake (over HTTP, through the same functions `connect hub clients add`
// and `connect bridge servers connect` use), a first sync, and a small site
// whose pages the bridge's forward auth protects, as nginx auth_request would.
// Embedded SQLite stores in a temporary directory (or --dir), in-process bridge
// state: nothing to install besides Go.

const (
	demoHubName  = "Connect demo hub"
	demoSiteName = "Demo site"
	demoPassword = "demo-password"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a hub, a bridge and a protected demo site on loopback with sample users until Ctrl-C",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "the hub's loopback address (falls back to a free port when taken)", Value: "127.0.0.1:8080"},
			&cli.StringFlag{Name: "site-listen", Usage: "the demo site's loopback address, where the bridge serves (falls back to a free port when taken)", Value: "127.0.0.1:8081"},
			&cli.StringFlag{Name: "dir", Usage: "keep the SQLite stores in this new or empty directory (default: a temporary one, deleted on exit)"},
			&cli.StringFlag{Name: flagLogLevel, Value: "warn", Usage: "log level of the hub and the bridge (on stderr)"},
		},
		Action: demo,
	}
}

// demoUser is one sample person; everyone's password is demoPassword.
type demoUser struct {
	userName, given, family, employee, dept string
	audiences                               []string
	course                                  bool
}

var demoUsers = []demoUser{
	{"alice", "Alice", "Archer", "E1001", "Teaching", []string{"Staff"}, true},
	{"bob", "Bob", "Baker", "E1002", "Teaching", []string{"Staff"}, false},
	{"carol", "Carol", "Chen", "S2001", "", []string{"Students"}, true},
	{"dave", "Dave", "Diaz", "S2002", "", []string{"Students"}, true},
	{"erin", "Erin", "Evans", "S2003", "", []string{"Students"}, false},
	{"frank", "Frank", "Fischer", "E1003", "Administration", []string{"Staff", "Students"}, false},
}

// The demo site's client system: only Staff may use it (so a student shows
// what a refusal looks like); both audiences and the course are synced.
const (
	demoRestrictAudience = "Staff"
	demoCourse           = "Safety induction"
)

var demoAudiences = []string{"Staff", "Students"}

// listenLoopback listens on addr, or on a free loopback port when addr's port
// is taken.
func listenLoopback(addr string) (net.Listener, error) {
	if !isLoopback(addr) {
		return nil, fmt.Errorf("demo: %q is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, fmt.Errorf("demo: listen: %w", err)
	}
	return ln, nil
}

// demoDir returns the directory of the stores and whether to delete it.
func demoDir(dir string) (string, bool, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "connect-demo-")
		return d, true, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("demo: --dir: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", false, fmt.Errorf("demo: --dir: %w", err)
	}
	if len(ents) > 0 {
		return "", false, fmt.Errorf("demo: --dir %s is not empty (the demo seeds new stores; remove it or pick another)", dir)
	}
	abs, err := filepath.Abs(dir)
	return abs, false, err
}

func demo(c *cli.Context) error {
	log, err := newLogger(c.App.ErrWriter, "text", c.String(flagLogLevel))
	if err != nil {
		return err
	}
	// After Ctrl-C the bridge's cancelled long-polls on the hub would log as
	// failed runs and failed requests: the demo goes quiet instead.
	var stopping atomic.Bool
	log = slog.New(quietHandler{Handler: log.Handler(), quiet: &stopping})
	hubLn, err := listenLoopback(c.String("listen"))
	if err != nil {
		return err
	}
	defer hubLn.Close()
	siteLn, err := listenLoopback(c.String("site-listen"))
	if err != nil {
		return err
	}
	defer siteLn.Close()
	dir, temp, err := demoDir(c.String("dir"))
	if err != nil {
		return err
	}
	if temp {
		defer os.RemoveAll(dir)
	}
	hubURL, siteURL := "http://"+hubLn.Addr().String(), "http://"+siteLn.Addr().String()
	ctx := c.Context

	// The hub, with the sample directory.
	hubDSN := "sqlite:" + filepath.Join(dir, "hub.db")
	st, err := openHubStore(ctx, hubDSN, log)
	if err != nil {
		return err
	}
	defer st.Close()
	token, err := seedDemo(ctx, st)
	if err != nil {
		return fmt.Errorf("demo: sample data: %w", err)
	}
	h, err := hub.New(hub.Config{
		Name: demoHubName, Listen: hubLn.Addr().String(), URL: hubURL,
		Store: st, Logger: log.With("part", "hub"), Registry: prometheus.NewRegistry(), Version: version,
	})
	if err != nil {
		return err
	}

	// The bridge: the stores and SSO handler of `connect bridge serve`.
	bridgeDSN := "sqlite:" + filepath.Join(dir, "bridge.db")
	blog := log.With("part", "bridge")
	bs, err := openBridgeStores(ctx, bridgeOptions{store: bridgeDSN, log: blog}, true)
	if err != nil {
		return err
	}
	defer bs.Close()
	breg := prometheus.NewRegistry()
	eng, err := newBridgeEngine(bs, blog, breg)
	if err != nil {
		return err
	}
	if err := sso.RecordURL(ctx, bs.records, siteURL); err != nil {
		return err
	}
	sb, err := sso.New(ctx, sso.Config{BaseURL: siteURL, SiteName: demoSiteName,
		Dir: bs.dir, Records: bs.records, State: bs.state, Sync: eng, Logger: blog, Registerer: breg})
	if err != nil {
		return err
	}
	site := &http.Server{Handler: demoSite(sb.Handler(), hubURL), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(blog.Handler(), slog.LevelWarn)}

	// Serve both; stop the bridge first on the way out so that its long-poll
	// on the hub's Changes feed does not hold up the hub's shutdown.
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	hubDone := make(chan error, 1)
	go func() { hubDone <- h.Serve(hubCtx, hubLn) }()
	siteDone := make(chan error, 1)
	go func() { siteDone <- site.Serve(siteLn) }()
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = site.Shutdown(sctx)
		stopHub()
		return <-hubDone
	}

	// The handshake, then a first sync, before anyone is told to log in.
	serverID, err := demoConnect(ctx, st, bs.records, hubURL, siteURL)
	if err != nil {
		_ = stop()
		return err
	}
	sum, err := demoSync(ctx, eng, serverID)
	if err != nil {
		_ = stop()
		return fmt.Errorf("demo: first sync: %w", err)
	}
	engCtx, stopEng := context.WithCancel(ctx)
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Serve(engCtx, 5*time.Second) }()

	printDemo(c.App.Writer, demoInfo{hubURL: hubURL, siteURL: siteURL, token: token, dir: dir, temp: temp,
		hubDSN: hubDSN, bridgeDSN: bridgeDSN, sync: sum})

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-hubDone:
		hubDone <- err
		runErr = fmt.Errorf("demo: hub stopped: %w", err)
	case err := <-siteDone:
		runErr = fmt.Errorf("demo: site stopped: %w", err)
	}
	stopping.Store(true)
	stopEng()
	if err := <-engDone; err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("bridge tasks", "err", err)
	}
	if err := stop(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// demoConnect does the setup-secret handshake: a secret made as `connect
// bridge servers connect` makes it, given to the hub as `connect hub clients
// add --url --secret` gives it; the hub calls the bridge's register endpoint
// over HTTP. It returns the bridge's server id of the hub.
func demoConnect(ctx context.Context, st store.Store, records bridge.Records, hubURL, siteURL string) (string, error) {
	secret, err := bridge.NewSetupSecret(ctx, records, 10*time.Minute, time.Now())
	if err != nil {
		return "", fmt.Errorf("demo: setup secret: %w", err)
	}
	_, err = hub.AddClient(ctx, st, hub.Connect{HubURL: hubURL, HubName: demoHubName, Actor: "demo"}, siteURL, secret, hub.ClientOptions{
		Name: demoSiteName, RestrictAudience: demoRestrictAudience, Audiences: demoAudiences, Courses: []string{demoCourse},
		Comment: "made by connect demo",
	})
	if err != nil {
		return "", fmt.Errorf("demo: handshake: %w", err)
	}
	servers, err := bridge.ListServers(ctx, records)
	if err != nil {
		return "", err
	}
	if len(servers) != 1 {
		return "", fmt.Errorf("demo: handshake: the bridge has %d servers, want 1", len(servers))
	}
	return servers[0].ID, nil
}

// demoSync runs the users and collections tasks once and summarises them.
func demoSync(ctx context.Context, eng *bridge.Engine, serverID string) (string, error) {
	var parts []string
	for _, task := range []string{bridge.TaskUsers, bridge.TaskCollections} {
		p, err := eng.RunTask(ctx, serverID, task, bridge.RunOptions{Full: true})
		if err != nil {
			return "", fmt.Errorf("%s: %w", task, err)
		}
		if p.Held() {
			return "", fmt.Errorf("%s: plan held (%s)", task, strings.Join(p.Reasons, "; "))
		}
		parts = append(parts, fmt.Sprintf("%s: %s", task, p.Summary()))
	}
	return strings.Join(parts, "; "), nil
}

type demoInfo struct {
	hubURL, siteURL, token, dir string
	temp                        bool
	hubDSN, bridgeDSN, sync     string
}

func printDemo(w io.Writer, d demoInfo) {
	kept := "kept after exit"
	if d.temp {
		kept = "deleted on exit"
	}
	fmt.Fprintf(w, `
Connect demo: a hub, and a site behind a bridge connected to it (on loopback)

  Site        %[1]s/
  Hub         %[2]s
  SCIM        %[2]s/scim/v2   (admin token %[3]s)
  Stores      %[4]s (hub.db, bridge.db; %[5]s)
  First sync  %[6]s

Open %[1]s/ in a browser, click "Log in using your account on: %[7]s",
log in on the hub with one of these logins, and the site shows the account
the bridge made for you (its username starts with tc):

`, d.siteURL, d.hubURL, d.token, d.dir, kept, d.sync, demoHubName)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  username\tpassword\tgroups\tsite access")
	for _, u := range demoUsers {
		groups := append([]string(nil), u.audiences...)
		if u.course {
			groups = append(groups, demoCourse)
		}
		access := "yes"
		if !demoInAudience(u) {
			access = "refused: not in " + demoRestrictAudience
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.userName, demoPassword, strings.Join(groups, ", "), access)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, `
Log out from the site's page: that ends the hub's session too.

While it runs:
  connect bridge users list --store %[1]s
  connect bridge settings set --store %[1]s auto-sso=true   # skip the site's login page
  curl -s -H 'Authorization: Bearer %[2]s' '%[3]s/scim/v2/Users?attributes=userName'

Press Ctrl-C to stop.
`, d.bridgeDSN, d.token, d.hubURL)
}

func demoInAudience(u demoUser) bool {
	for _, a := range u.audiences {
		if a == demoRestrictAudience {
			return true
		}
	}
	return false
}

// demoSite is the site's origin: the bridge's own routes as the shipped
// nginx configuration routes them, and every other path a page protected by
// the bridge's forward auth.
func demoSite(bridgeHandler http.Handler, hubURL string) http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"/login", "/logout", "/saml/", "/connect/"} {
		mux.Handle(p, bridgeHandler)
	}
	mux.Handle("/", forwardAuth(bridgeHandler, demoPage(hubURL)))
	return mux
}

// forwardAuth does in process what nginx auth_request does in front of a
// site: it asks the bridge's /connect/auth with the browser's cookies, then
// serves the page with the X-Connect-* answer (202), sends the browser to
// the bridge's login page (401) or refuses (403).
func forwardAuth(bridgeHandler, page http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, err := http.NewRequestWithContext(r.Context(), http.MethodGet, sp.PathAuth, nil)
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		sub.Host, sub.RemoteAddr = r.Host, r.RemoteAddr
		sub.Header.Set("X-Original-URI", r.URL.RequestURI())
		sub.Header.Set("X-Original-Method", r.Method)
		for _, c := range r.Header.Values("Cookie") {
			sub.Header.Add("Cookie", c)
		}
		ans := &headerRecorder{h: http.Header{}}
		bridgeHandler.ServeHTTP(ans, sub)
		switch ans.code {
		case http.StatusAccepted:
			// The page sees only what the bridge answered, never a client's
			// own X-Connect-* headers.
			for _, k := range []string{sp.HeaderUser, sp.HeaderEmail, sp.HeaderName, sp.HeaderGroups} {
				r.Header.Del(k)
				if v := ans.h.Get(k); v != "" {
					r.Header.Set(k, v)
				}
			}
			page.ServeHTTP(w, r)
		case http.StatusUnauthorized:
			login := ans.h.Get(sp.HeaderLogin)
			if !strings.HasPrefix(login, "/") || strings.HasPrefix(login, "//") {
				login = sp.PathLogin
			}
			http.Redirect(w, r, login, http.StatusFound)
		case http.StatusForbidden:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			_ = demoPageTemplate.Execute(w, demoPageData{Forbidden: true})
		default:
			http.Error(w, "the bridge could not check your session; try again", http.StatusServiceUnavailable)
		}
	})
}

// quietHandler drops every record once quiet is set.
type quietHandler struct {
	slog.Handler
	quiet *atomic.Bool
}

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.quiet.Load() && h.Handler.Enabled(ctx, l)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as), h.quiet}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name), h.quiet}
}

// headerRecorder keeps the status and headers of the forward-auth answer.
type headerRecorder struct {
	h    http.Header
	code int
}

func (r *headerRecorder) Header() http.Header { return r.h }
func (r *headerRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *headerRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}

type demoPageData struct {
	User, Name, Email, Path, HubURL string
	Groups                          []string
	Forbidden                       bool
}

var demoPageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>` + demoSiteName + `</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;margin:0;color:#1d2433}
main{max-width:30rem;margin:4rem auto;background:#fff;border-radius:8px;padding:2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}
h1{font-size:1.35rem;margin:0 0 1rem}
dl{display:grid;grid-template-columns:7rem 1fr;gap:.4rem .8rem;margin:1.2rem 0}
dt{color:#6b7385}dd{margin:0}
code{background:#eef0f4;padding:.1rem .35rem;border-radius:4px}
a.button{display:inline-block;background:#3b4252;color:#fff;text-decoration:none;padding:.55rem 1.1rem;border-radius:5px}
.muted{color:#6b7385;font-size:.9rem}
</style></head><body><main>
{{if .Forbidden}}<h1>No access</h1>
<p id="message">Your account may no longer use this site. Ask your administrator if you need access.</p>
<p><a class="button" id="logout" href="/logout">Log out</a></p>
{{else}}<h1>` + demoSiteName + `</h1>
<p id="hello">You are logged in as <code id="user">{{.User}}</code>.</p>
<dl>
<dt>Name</dt><dd id="name">{{.Name}}</dd>
<dt>Email</dt><dd id="email">{{.Email}}</dd>
<dt>Groups</dt><dd id="groups">{{range $i, $g := .Groups}}{{if $i}}, {{end}}{{$g}}{{end}}</dd>
<dt>Page</dt><dd id="path">{{.Path}}</dd>
</dl>
<p class="muted">The site knows you only from the bridge's forward-auth answer
(the X-Connect-* headers), as a site behind nginx auth_request does.</p>
<p><a class="button" id="logout" href="/logout">Log out</a> &nbsp; <a class="muted" href="{{.HubURL}}/">Open the hub</a></p>
{{end}}</main></body></html>`))

// demoPage shows who is logged in, from the forward-auth headers.
func demoPage(hubURL string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" {
			http.NotFound(w, r)
			return
		}
		d := demoPageData{User: r.Header.Get(sp.HeaderUser), Name: r.Header.Get(sp.HeaderName),
			Email: r.Header.Get(sp.HeaderEmail), Path: r.URL.RequestURI(), HubURL: hubURL}
		if g := r.Header.Get(sp.HeaderGroups); g != "" {
			for _, s := range strings.Split(g, ",") {
				d.Groups = append(d.Groups, strings.NewReplacer("%2C", ",", "%25", "%").Replace(s))
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = demoPageTemplate.Execute(w, d)
	})
}

// seedDemo loads the sample directory through the store and mints an admin token.
func seedDemo(ctx context.Context, st store.Store) (string, error) {
	token, _, err := hub.CreateToken(ctx, st, "demo", "demo-admin", false)
	if err != nil {
		return "", err
	}
	hash, err := password.Hash(demoPassword)
	if err != nil {
		return "", err
	}
	members := map[string][]scim.Member{}
	var course []scim.Member
	for _, d := range demoUsers {
		u := scim.User{
			UserName:    d.userName,
			DisplayName: d.given + " " + d.family,
			Name:        &scim.Name{GivenName: d.given, FamilyName: d.family},
			Emails:      []scim.MultiValue{{Value: d.userName + "@example.org", Type: "work", Primary: true}},
			Active:      scim.BoolPtr(true),
			Enterprise:  &scim.EnterpriseUser{EmployeeNumber: d.employee, Department: d.dept},
			Connect:     &scim.ConnectUser{PasswordHash: hash, EmailVerified: scim.BoolPtr(true)},
		}
		u.SetSchemas()
		created, err := st.CreateUser(ctx, u)
		if err != nil {
			return "", fmt.Errorf("user %s: %w", d.userName, err)
		}
		m := scim.Member{Value: created.ID, Display: created.DisplayName, Type: "User"}
		for _, a := range d.audiences {
			members[a] = append(members[a], m)
		}
		if d.course {
			course = append(course, m)
		}
	}
	groups := []scim.Group{
		{DisplayName: "Staff", Members: members["Staff"], Connect: &scim.ConnectGroup{Kind: scim.KindAudience}},
		{DisplayName: "Students", Members: members["Students"], Connect: &scim.ConnectGroup{Kind: scim.KindAudience}},
		{DisplayName: demoCourse, Members: course, Connect: &scim.ConnectGroup{Kind: scim.KindCourse}},
	}
	for _, g := range groups {
		g.SetSchemas()
		if _, err := st.CreateGroup(ctx, g); err != nil {
			return "", fmt.Errorf("group %s: %w", g.DisplayName, err)
		}
	}
	return token, nil
}
