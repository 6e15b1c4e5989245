package bridge_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/scimtarget"
	"github.com/connectsso/connect/bridge/local/sqlite"
	"github.com/connectsso/connect/bridge/state/memory"
)

// TestMappingRefusedWithoutPrivilegedFlag: a SCIM target without metadata
// reads every account as unprivileged, so a match there may be a site
// administrator. Account mapping refuses it (the manual account stays the
// site's, no account is made for the hub user, every run reports it, a login
// is refused too), while a hub user without a match is still created. The same
// match on a target that marks privileged accounts is taken over, so the
// refusal comes from the capability and not from the match.
func TestMappingRefusedWithoutPrivilegedFlag(t *testing.T) {
	ctx := context.Background()
	source := hubtest.Start(t, hubtest.Options{})
	site := hubtest.Start(t, hubtest.Options{})
	admin := source.CreateUser(t, hubtest.User("siteadmin"))
	fresh := source.CreateUser(t, hubtest.User("newcomer"))

	for _, tt := range []struct {
		name     string
		metadata bool
		wantLink bool
	}{
		{"no metadata: refused", false, false},
		{"metadata: linked", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target, err := scimtarget.New(ctx, scimtarget.Config{BaseURL: site.SCIM, Token: site.Admin, Extension: tt.metadata, Metadata: tt.metadata})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { target.Close() })
			if got := target.Capabilities().Privileged; got != tt.metadata {
				t.Fatalf("Capabilities().Privileged = %v, want %v", got, tt.metadata)
			}
			// The site's own administrator, named like the hub user. Without
			// metadata the target cannot record that it is privileged.
			acct := local.Account{Username: "SiteAdmin-" + tt.name[:2], Auth: local.AuthManual, Email: "root@site.example", Privileged: tt.metadata}
			manual, _, err := local.PutAccount(ctx, target, local.Put{Account: acct})
			if err != nil {
				t.Fatal(err)
			}
			eng, srv := scimTargetEngine(t, target, source, map[string]string{
				"migrate-local-accounts": "true", "account-mapping": "username"})
			// Each subtest maps its own site account: rename the hub user to it.
			u := admin
			u.UserName = manual.Username
			source.ReplaceUser(t, u)

			p, err := eng.RunTask(ctx, srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: true})
			if err != nil {
				t.Fatalf("users: %v\n%s", err, planText(p))
			}
			item := planItem(p, admin.ID)
			if tt.metadata {
				// A privileged account on a target that marks it: the privileged
				// rule refuses, not the capability one.
				if item == nil || item.Action != bridge.ActRefuse || !strings.Contains(item.Rule, "privileged local account") {
					t.Fatalf("want the privileged refusal:\n%s", planText(p))
				}
				// An unprivileged match on the same target is taken over.
				other := local.Account{Username: "plain-" + manual.Username, Auth: local.AuthManual}
				plain, _, err := local.PutAccount(ctx, target, local.Put{Account: other})
				if err != nil {
					t.Fatal(err)
				}
				u.UserName = plain.Username
				source.ReplaceUser(t, u)
				p, err = eng.RunTask(ctx, srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: true})
				if err != nil {
					t.Fatalf("users: %v\n%s", err, planText(p))
				}
				if it := planItem(p, admin.ID); it == nil || it.Action != bridge.ActLink {
					t.Fatalf("want a link on a target that marks privileged accounts:\n%s", planText(p))
				}
				if got, err := target.AccountByHubID(ctx, srv.ID, admin.ID); err != nil || got.ID != plain.ID {
					t.Fatalf("linked account %+v, %v; want %s", got, err, plain.ID)
				}
				return
			}
			const wantRule = "target cannot mark privileged accounts; mapping refused"
			if item == nil || item.Action != bridge.ActRefuse || !strings.Contains(item.Rule, wantRule) {
				t.Fatalf("want a refuse item with %q:\n%s", wantRule, planText(p))
			}
			if !strings.Contains(item.Rule, manual.Username) {
				t.Fatalf("rule %q does not name the local account", item.Rule)
			}
			if it := planItem(p, fresh.ID); it == nil || it.Action != bridge.ActCreate {
				t.Fatalf("a hub user without a match is still created:\n%s", planText(p))
			}
			checkUntouched := func(stage string) {
				t.Helper()
				got, err := target.Account(ctx, manual.ID)
				if err != nil || got.Auth != local.AuthManual || got.HubUserID != "" || got.Email != "root@site.example" {
					t.Fatalf("%s: the site's account changed: %+v %v", stage, got, err)
				}
				if a, err := target.AccountByHubID(ctx, srv.ID, admin.ID); !errors.Is(err, local.ErrNotFound) {
					t.Fatalf("%s: an account exists for the refused hub user: %+v %v", stage, a, err)
				}
			}
			checkUntouched("first run")
			// Reported again on every run, never guessed.
			p, err = eng.RunTask(ctx, srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: true})
			if err != nil {
				t.Fatal(err)
			}
			if it := planItem(p, admin.ID); it == nil || it.Action != bridge.ActRefuse || !strings.Contains(it.Rule, wantRule) {
				t.Fatalf("second run:\n%s", planText(p))
			}
			checkUntouched("second run")
			// A login (just-in-time account) follows the same rule.
			if _, err := eng.SyncUser(ctx, srv.ID, admin.ID); !errors.Is(err, bridge.ErrRefused) || !strings.Contains(err.Error(), wantRule) {
				t.Fatalf("SyncUser = %v, want ErrRefused with %q", err, wantRule)
			}
			checkUntouched("login")
			// `connect bridge why` says so about the site's account.
			_, reasons, err := eng.Why(ctx, manual.Username)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, r := range reasons {
				found = found || (r.Rule == "mapping" && strings.Contains(r.Detail, "cannot mark privileged accounts"))
			}
			if !found {
				t.Fatalf("why %s: %+v", manual.Username, reasons)
			}
		})
	}
}

// scimTargetEngine is an engine writing into target, its records in SQLite,
// reading source through a read-only token.
func scimTargetEngine(t *testing.T, target bridge.Target, source *hubtest.Hub, settings map[string]string) (*bridge.Engine, bridge.Server) {
	t.Helper()
	ctx := context.Background()
	recs, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "records.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recs.Close() })
	eng, err := bridge.New(bridge.Config{Target: target, Records: recs, State: memory.New(memory.Config{}),
		Registerer: prometheus.NewRegistry(), PageSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bridge.AddServer(ctx, recs, "hub", source.SCIM, source.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := bridge.SaveSettings(ctx, recs, settings); err != nil {
		t.Fatal(err)
	}
	return eng, srv
}

func planItem(p *bridge.Plan, hubID string) *bridge.Item {
	if p == nil {
		return nil
	}
	for i := range p.Items {
		if p.Items[i].HubID == hubID && p.Items[i].Kind == "user" {
			return &p.Items[i]
		}
	}
	return nil
}
