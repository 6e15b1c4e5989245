package sso_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/sqlite"
	"github.com/connectsso/connect/bridge/sso"
	"github.com/connectsso/connect/bridge/state/memory"
	"github.com/connectsso/connect/saml/sp"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/password"
)

// inProcess is the bridge's SSO wiring in this process (the same sso.New as
// `bridge serve`) on a real hub process, connected by the handshake.
type inProcess struct {
	h      *hubProc
	dir    *sqlite.Dir
	eng    *bridge.Engine
	b      *sso.Bridge
	server string
	base   string
}

func newInProcess(t *testing.T, h *hubProc, settings map[string]string, clientArgs ...string) *inProcess {
	t.Helper()
	ctx := context.Background()
	dir, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "bridge.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	if len(settings) > 0 {
		if err := bridge.SaveSettings(ctx, dir, settings); err != nil {
			t.Fatal(err)
		}
	}
	st := memory.New(memory.Config{})
	eng, err := bridge.New(bridge.Config{Target: dir, Records: dir, State: st})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &inProcess{h: h, dir: dir, eng: eng, base: "http://" + l.Addr().String()}
	env.b, err = sso.New(ctx, sso.Config{BaseURL: env.base, Dir: dir, Records: dir, State: st, Sync: eng})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: env.b.Handler()}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	secret, err := bridge.NewSetupSecret(ctx, dir, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	connectCmd(t, "", append([]string{"hub", "clients", "add", "--store", h.DSN, "--name", "Site", "--url", env.base, "--secret", secret}, clientArgs...)...)
	servers, err := bridge.ListServers(ctx, dir)
	if err != nil || len(servers) != 1 {
		t.Fatalf("servers after the handshake: %v %v", servers, err)
	}
	env.server = servers[0].ID
	return env
}

func (env *inProcess) login(t *testing.T, hubUserID string) (sp.LocalUser, error) {
	t.Helper()
	return env.b.Accounts.Login(context.Background(), env.server, sp.Identity{Hub: env.server, Subject: hubUserID})
}

func (env *inProcess) manual(t *testing.T, username, email string, privileged bool) local.Account {
	t.Helper()
	hash, err := password.Hash("local-pw")
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := local.PutAccount(context.Background(), env.dir, local.Put{Account: local.Account{
		Username: username, Auth: local.AuthManual, Email: email, Privileged: privileged, PasswordHash: hash}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func verified(name string) scim.User {
	u := hubtest.User(name)
	u.Connect = &scim.ConnectUser{EmailVerified: scim.BoolPtr(true)}
	return u
}

// TestAccountsRules runs Accounts.Login on accounts the sync has not made,
// with the sync's rules: account mapping by verified email when migrating
// local accounts, ambiguous and privileged matches refused, the site's own
// suspension kept, Connect's suspension lifted when the hub serves the user,
// and a user the hub does not serve to this bridge out of scope.
func TestAccountsRules(t *testing.T) {
	t.Parallel()
	h := startHub(t, hubOpts{})
	ctx := context.Background()
	dave := h.CreateUser(t, verified("dave"))
	erin := h.CreateUser(t, verified("erin"))
	root := h.CreateUser(t, verified("root"))
	fay := h.CreateUser(t, verified("fay"))
	gus := h.CreateUser(t, verified("gus"))
	out := h.CreateUser(t, verified("out"))
	h.CreateGroup(t, "Staff", "audience", dave.ID, erin.ID, root.ID, fay.ID, gus.ID)
	env := newInProcess(t, h, map[string]string{"migrate-local-accounts": "true", "account-mapping": "email", "removal-action": "suspend"},
		"--restrict-audience", "Staff", "--audience", "Staff")
	// The local Staff group exists (with no members: no account yet).
	if _, err := env.eng.RunTask(ctx, env.server, bridge.TaskCollections, bridge.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	localDave := env.manual(t, "dave.local", "dave@example.org", false)
	env.manual(t, "erin1", "erin@example.org", false)
	env.manual(t, "erin2", "ERIN@example.org", false)
	env.manual(t, "admin", "root@example.org", true)

	// Mapped by verified email: the manual account becomes the connect one.
	u, err := env.login(t, dave.ID)
	if err != nil || u.ID != localDave.ID || u.Username != "dave.local" || u.Hub != env.server {
		t.Fatalf("dave: %+v %v", u, err)
	}
	if a, _ := env.dir.Account(ctx, localDave.ID); a.Auth != local.AuthConnect || a.HubUserID != dave.ID {
		t.Fatalf("dave's account not converted: %+v", a)
	}
	for name, id := range map[string]string{"erin (ambiguous)": erin.ID, "root (privileged)": root.ID} {
		if _, err := env.login(t, id); !errors.Is(err, sp.ErrNotAllowed) {
			t.Errorf("%s: %v, want ErrNotAllowed", name, err)
		}
	}
	if n, _ := env.dir.CountAccounts(ctx, local.AccountQuery{Server: env.server}); n != 1 {
		t.Errorf("%d connect accounts after refused mappings, want 1", n)
	}
	if _, err := env.login(t, out.ID); !errors.Is(err, sp.ErrOutOfScope) {
		t.Errorf("user outside the restricted audience: %v, want ErrOutOfScope", err)
	}

	// fay: made just in time with a generated username; then suspended by
	// Connect (as the removal action does) while the hub still serves her:
	// the next login lifts it.
	fu, err := env.login(t, fay.ID)
	if err != nil || fu.Username != bridge.GeneratedUsername(env.server, fay.ID, 0) || strings.Join(fu.Groups, ",") != "Staff" {
		t.Fatalf("fay: %+v %v", fu, err)
	}
	suspend := func(id, by string) {
		t.Helper()
		if _, _, err := local.PutAccount(ctx, env.dir, local.Put{Account: local.Account{ID: id, Suspended: true, SuspendedBy: by}, Fields: local.FieldSuspended}); err != nil {
			t.Fatal(err)
		}
	}
	suspend(fu.ID, local.SuspendedByConnect)
	if _, err := env.b.Accounts.Allowed(ctx, fu); !errors.Is(err, sp.ErrNotAllowed) {
		t.Fatalf("suspended account allowed: %v", err)
	}
	if u, err := env.login(t, fay.ID); err != nil || u.ID != fu.ID {
		t.Fatalf("fay after a Connect suspension: %+v %v", u, err)
	}
	if a, _ := env.dir.Account(ctx, fu.ID); a.Suspended {
		t.Fatal("Connect's suspension not lifted at login")
	}
	// gus: suspended by the site: stays out, whatever the hub says.
	gu, err := env.login(t, gus.ID)
	if err != nil {
		t.Fatal(err)
	}
	suspend(gu.ID, "")
	if _, err := env.login(t, gus.ID); !errors.Is(err, sp.ErrNotAllowed) {
		t.Fatalf("site-suspended gus: %v, want ErrNotAllowed", err)
	}
	if a, _ := env.dir.Account(ctx, gu.ID); !a.Suspended {
		t.Fatal("the site's suspension was lifted")
	}
}

// TestLocalAuth: manual accounts log in with their password; a connect
// account never while its hub answers, and with the hub unreachable only
// with a synced hash.
func TestLocalAuth(t *testing.T) {
	t.Parallel()
	env := newInProcess(t, startHub(t, hubOpts{}), nil)
	ctx := context.Background()
	env.manual(t, "site.admin", "admin@example.org", true)
	hank := env.h.CreateUser(t, verified("hank"))
	hu, err := env.login(t, hank.ID)
	if err != nil {
		t.Fatal(err)
	}
	la := env.b.Local
	if u, err := la.Authenticate(ctx, "site.admin", "local-pw"); err != nil || u.Username != "site.admin" || u.Hub != "" {
		t.Fatalf("manual login: %+v %v", u, err)
	}
	if _, err := la.Authenticate(ctx, "site.admin", "wrong"); !errors.Is(err, sp.ErrInvalid) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := la.Authenticate(ctx, "nobody", "local-pw"); !errors.Is(err, sp.ErrInvalid) {
		t.Fatalf("unknown user: %v", err)
	}
	// hank has no hash (the hub does not sync them): never.
	unreachable := &sso.LocalAuth{Dir: env.dir, Accounts: env.b.Accounts, Reachable: func(context.Context, string) bool { return false }}
	if _, err := unreachable.Authenticate(ctx, hu.Username, "x"); !errors.Is(err, sp.ErrInvalid) {
		t.Fatalf("connect account without a hash: %v", err)
	}
	// With a hash: refused while the hub answers (the real probe), accepted
	// when it does not.
	hash, _ := password.Hash("hank-pw")
	if _, _, err := local.PutAccount(ctx, env.dir, local.Put{Account: local.Account{ID: hu.ID, PasswordHash: hash}, Fields: local.FieldPasswordHash}); err != nil {
		t.Fatal(err)
	}
	if _, err := la.Authenticate(ctx, hu.Username, "hank-pw"); !errors.Is(err, sp.ErrInvalid) {
		t.Fatalf("connect account while its hub answers: %v", err)
	}
	for _, login := range []string{hu.Username, "hank@example.org"} {
		if u, err := unreachable.Authenticate(ctx, login, "hank-pw"); err != nil || u.ID != hu.ID {
			t.Fatalf("connect account %s with the hub unreachable: %+v %v", login, u, err)
		}
	}
	probe := &sso.Probe{Records: env.dir, Clock: time.Now}
	if !probe.Reachable(ctx, env.server) {
		t.Fatal("probe: the running hub is unreachable")
	}
	env.h.proc.kill()
	if !probe.Reachable(ctx, env.server) {
		t.Fatal("probe answers are not reused")
	}
	if (&sso.Probe{Records: env.dir, Clock: time.Now}).Reachable(ctx, env.server) {
		t.Fatal("probe: a stopped hub is reachable")
	}
}
