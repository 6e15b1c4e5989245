package bridge_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// TestGeneratedUsername: local usernames start with "tc", are stable per (hub,
// user), unique, survive a lost state without duplicates, and step aside for a
// clashing local account.
func TestGeneratedUsername(t *testing.T) {
	e := newEnv(t, envOpts{})
	users := e.hub.CreateUsers(t, "name", 30)
	e.users()
	seen := map[string]bool{}
	for _, u := range users {
		a := e.account(u.ID)
		if a.Username != bridge.GeneratedUsername(e.srv.ID, u.ID, 0) || !strings.HasPrefix(a.Username, "tc") {
			t.Fatalf("username %q of %s, want %q", a.Username, u.ID, bridge.GeneratedUsername(e.srv.ID, u.ID, 0))
		}
		if seen[a.Username] {
			t.Fatalf("username %q twice", a.Username)
		}
		seen[a.Username] = true
		if a.Username == u.UserName {
			t.Fatal("hub userName copied")
		}
	}
	// The same hub user under another server id gets another name.
	if bridge.GeneratedUsername("other", users[0].ID, 0) == e.account(users[0].ID).Username {
		t.Fatal("username does not depend on the server")
	}

	// State lost: a full reconcile finds every account again (no duplicates,
	// same usernames).
	if err := e.st.Wipe(e.ctx, e.srv.ID); err != nil {
		t.Fatal(err)
	}
	p := e.users()
	if p.Mode != "full" || p.Counts[bridge.ActCreate] != 0 {
		t.Fatalf("after a wipe: %s", planText(p))
	}
	if len(e.accounts()) != 30 {
		t.Fatalf("%d accounts after a wipe", len(e.accounts()))
	}

	// A local account already holds the name the new user would get.
	u := e.hub.CreateUser(t, hubtest.User("clash"))
	taken := e.manual(local.Account{Username: bridge.GeneratedUsername(e.srv.ID, u.ID, 0), Email: "site@example.org"})
	e.users()
	a := e.account(u.ID)
	if a.Username != bridge.GeneratedUsername(e.srv.ID, u.ID, 1) || a.ID == taken.ID {
		t.Fatalf("clash: got %q (id %s), manual %s", a.Username, a.ID, taken.ID)
	}
	if m, _ := e.dir.Account(e.ctx, taken.ID); m.Auth != local.AuthManual {
		t.Fatalf("the clashing manual account changed: %+v", m)
	}
}

// richUser has every attribute of DESIGN.md §3 set, with suffix in its values.
func richUser(name, suffix string) scim.User {
	u := hubtest.User(name)
	u.Name.GivenName = "Given" + suffix
	u.Name.FamilyName = "Family" + suffix
	u.DisplayName = "Display" + suffix
	u.Emails = []scim.MultiValue{{Value: name + suffix + "@example.org", Primary: true, Type: "work"}}
	u.PreferredLanguage = "fr" + suffix
	u.Timezone = "Europe/Paris" + suffix
	u.Title = "Engineer" + suffix
	u.Addresses = []scim.Address{{Type: "work", Locality: "Paris" + suffix, Country: "FR" + suffix}}
	u.PhoneNumbers = []scim.MultiValue{{Value: "+331" + suffix, Primary: true, Type: "work"}}
	u.Enterprise = &scim.EnterpriseUser{EmployeeNumber: "E" + suffix, Organization: "Org" + suffix,
		Department: "Dep" + suffix, Division: "Div" + suffix}
	u.Connect = &scim.ConnectUser{Interests: []string{"golf" + suffix}, EmailVerified: scim.BoolPtr(suffix == "1"),
		CustomFields: []scim.CustomField{{Name: "shoe", Value: "42" + suffix}}}
	u.Password = "Secret-pass-" + suffix + "-long-enough"
	return u
}

// localValue reads the local field(s) an attribute key writes.
var localValue = map[string]func(a local.Account) string{
	"userName":          func(a local.Account) string { return a.Username },
	"givenName":         func(a local.Account) string { return a.GivenName },
	"familyName":        func(a local.Account) string { return a.FamilyName },
	"displayName":       func(a local.Account) string { return a.DisplayName },
	"email":             func(a local.Account) string { return a.Email },
	"emailVerified":     func(a local.Account) string { return fmt.Sprint(a.EmailVerified) },
	"active":            func(a local.Account) string { return fmt.Sprint(a.Suspended) },
	"preferredLanguage": func(a local.Account) string { return a.Language },
	"timezone":          func(a local.Account) string { return a.Timezone },
	"city":              func(a local.Account) string { return a.City },
	"country":           func(a local.Account) string { return a.Country },
	"phone":             func(a local.Account) string { return a.Phone },
	"employeeNumber":    func(a local.Account) string { return a.IDNumber },
	"title":             func(a local.Account) string { return a.Title },
	"organization":      func(a local.Account) string { return a.Organization },
	"department":        func(a local.Account) string { return a.Department },
	"interests":         func(a local.Account) string { return strings.Join(a.Interests, ",") },
	"customFields":      func(a local.Account) string { return fmt.Sprint(a.CustomFields) },
	"passwordHash":      func(a local.Account) string { return a.PasswordHash },
}

// siteValue is what the site writes into an excluded field.
func siteValue(key string) local.Put {
	a := local.Account{}
	var f local.Fields
	for _, at := range bridge.Attributes {
		if at.Key == key {
			f = at.Fields
		}
	}
	a.Username = "site-user-" + strings.ToLower(key)
	a.GivenName, a.FamilyName, a.DisplayName, a.Email = "SiteG", "SiteF", "SiteD", "site@example.org"
	a.EmailVerified = false
	a.Suspended = false
	a.Language, a.Timezone, a.City, a.Country, a.Phone = "site-lang", "site-tz", "site-city", "site-country", "site-phone"
	a.IDNumber, a.Title, a.Organization, a.Department = "site-id", "site-title", "site-org", "site-dep"
	a.Interests = []string{"site-interest"}
	a.CustomFields = []local.CustomField{{Name: "site", Value: "x"}}
	a.PasswordHash = "$2a$10$abcdefghijklmnopqrstuu5Ju1Zr8rGcXjKx0u2w5x0o8gZ1yJ9Xq"
	return local.Put{Account: a, Fields: f}
}

// TestExclusions: for each attribute, excluding it keeps the site's value
// through creates, updates and full reconciles, while the other attributes
// follow the hub.
func TestExclusions(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{PasswordHashes: true})
	for i, at := range bridge.Attributes {
		if at.Fields == 0 {
			continue // division, manager: no local field to keep
		}
		t.Run(at.Key, func(t *testing.T) {
			e := newEnv(t, envOpts{hub: h, settings: map[string]string{"exclusions": at.Key}})
			get := localValue[at.Key]
			hu := e.hub.CreateUser(t, richUser(fmt.Sprintf("ex%02d", i), "1"))
			e.users()
			a := e.account(hu.ID)
			// Every other attribute was copied.
			for k, f := range localValue {
				if k == at.Key || k == "active" || k == "emailVerified" {
					continue
				}
				if f(a) == "" || f(a) == "[]" {
					t.Errorf("%s not copied on create: %+v", k, a)
				}
			}
			if v := get(a); at.Key != "userName" && at.Key != "active" && at.Key != "emailVerified" && v != "" && v != "[]" {
				t.Fatalf("excluded %s written on create: %q", at.Key, v)
			}
			if at.Key == "userName" {
				if !strings.HasPrefix(a.Username, "tc") {
					t.Fatalf("excluded userName: username %q", a.Username)
				}
			} else if a.Username != hu.UserName {
				t.Fatalf("userName not excluded: username %q, want the hub's %q", a.Username, hu.UserName)
			}

			// The site sets its own value; the hub changes everything.
			put := siteValue(at.Key)
			put.Account.ID = a.ID
			if _, _, err := local.PutAccount(e.ctx, e.dir, put); err != nil {
				t.Fatal(err)
			}
			site := get(e.account(hu.ID))
			nu := richUser(hu.UserName, "2")
			nu.ID = hu.ID
			nu.UserName = hu.UserName + "-renamed"
			nu.Active = scim.BoolPtr(false)
			e.hub.ReplaceUser(t, nu)
			for _, run := range []func() *bridge.Plan{e.users, e.full} {
				run()
				b := e.account(hu.ID)
				if got := get(b); got != site {
					t.Fatalf("excluded %s overwritten: %q, want the site's %q", at.Key, got, site)
				}
				for k, f := range localValue {
					if k == at.Key || k == "userName" {
						continue
					}
					if f(b) == f(a) && k != "emailVerified" && k != "passwordHash" {
						t.Errorf("%s not updated (%q) while only %s is excluded", k, f(b), at.Key)
					}
				}
			}
		})
	}
}

// TestDefaultExclusions: with the default settings, exactly the attributes
// DESIGN.md §3 marks "not copied" are left alone.
func TestDefaultExclusions(t *testing.T) {
	e := newEnv(t, envOpts{hubOpts: hubtest.Options{PasswordHashes: true}})
	hu := e.hub.CreateUser(t, richUser("defaults", "1"))
	e.users()
	a := e.account(hu.ID)
	for _, k := range bridge.DefaultExclusions {
		f, ok := localValue[k]
		if !ok {
			continue
		}
		if k == "userName" {
			if !strings.HasPrefix(a.Username, "tc") {
				t.Errorf("username %q", a.Username)
			}
			continue
		}
		if v := f(a); v != "" && v != "[]" {
			t.Errorf("%s copied by default: %q", k, v)
		}
	}
	for _, k := range []string{"givenName", "familyName", "displayName", "email", "preferredLanguage", "timezone", "city", "country", "phone", "passwordHash"} {
		if v := localValue[k](a); v == "" {
			t.Errorf("%s not copied by default", k)
		}
	}
	if !a.EmailVerified {
		t.Error("emailVerified not copied")
	}
}

// TestPasswordHashes: hashes are stored when the hub sends them, and a connect
// account can log in with one while its hub is down.
func TestPasswordHashes(t *testing.T) {
	e := newEnv(t, envOpts{hubOpts: hubtest.Options{PasswordHashes: true}})
	u := hubtest.User("pw")
	u.Password = "correct-horse-battery"
	hu := e.hub.CreateUser(t, u)
	e.users()
	a := e.account(hu.ID)
	if a.PasswordHash == "" {
		t.Fatal("no hash stored")
	}
	if _, err := local.Authenticate(e.ctx, e.dir, a.Username, "correct-horse-battery", local.AuthOptions{AllowConnect: true}); err != nil {
		t.Fatalf("login with the synced hash: %v", err)
	}
	// Without the hub setting, nothing is sent and nothing is cleared.
	e2 := newEnv(t, envOpts{})
	hu2 := e2.hub.CreateUser(t, u)
	e2.users()
	if h := e2.account(hu2.ID).PasswordHash; h != "" {
		t.Fatalf("hash stored without sync-password-hashes: %q", h)
	}
}

// TestAccountMapping: each mapping key, with its safeguards.
func TestAccountMapping(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	verified := func(u scim.User) scim.User {
		u.Connect = &scim.ConnectUser{EmailVerified: scim.BoolPtr(true)}
		return u
	}
	tests := []struct {
		name    string
		key     string
		migrate bool
		hub     func(n string) scim.User
		// local makes the manual accounts; hubID is the hub user's id.
		local func(e *env, n, hubID string) []local.Account
		// want: "link" (the first manual account becomes the connect account),
		// "create" (a new account, manual ones untouched) or "refuse" (nothing).
		want     string
		wantRule string
	}{
		{"username", "username", true, hubtest.User, func(e *env, n, _ string) []local.Account {
			return []local.Account{e.manual(local.Account{Username: strings.ToUpper(n), Email: "other@example.org"})}
		}, "link", "by username"},
		{"email verified", "email", true, func(n string) scim.User { return verified(hubtest.User(n)) }, func(e *env, n, _ string) []local.Account {
			return []local.Account{e.manual(local.Account{Username: "site-" + n, Email: strings.ToUpper(n) + "@example.org"})}
		}, "link", "verified email"},
		{"email not verified", "email", true, hubtest.User, func(e *env, n, _ string) []local.Account {
			return []local.Account{e.manual(local.Account{Username: "site-" + n, Email: n + "@example.org"})}
		}, "create", "not verified"},
		{"idnumber", "idnumber", true, func(n string) scim.User {
			u := hubtest.User(n)
			u.Enterprise = &scim.EnterpriseUser{EmployeeNumber: "EMP-" + n}
			return u
		}, func(e *env, n, _ string) []local.Account {
			return []local.Account{e.manual(local.Account{Username: "site-" + n, IDNumber: "EMP-" + n})}
		}, "link", "by idnumber"},
		{"uniqueid", "uniqueid", true, hubtest.User, func(e *env, n, hubID string) []local.Account {
			return []local.Account{e.manual(local.Account{Username: "site-" + n, IDNumber: hubID})}
		}, "link", "by uniqueid"},
		{"ambiguous", "email", true, func(n string) scim.User { return verified(hubtest.User(n)) }, func(e *env, n, _ string) []local.Account {
			return []local.Account{
				e.manual(local.Account{Username: "site-a-" + n, Email: n + "@example.org"}),
				e.manual(local.Account{Username: "site-b-" + n, Email: n + "@EXAMPLE.org"}),
			}
		}, "refuse", "ambiguous"},
		{"ambiguous idnumber", "idnumber", true, func(n string) scim.User {
			u := hubtest.User(n)
			u.Enterprise = &scim.EnterpriseUser{EmployeeNumber: "DUP-" + n}
			return u
		}, func(e *env, n, _ string) []local.Account {
			return []local.Account{
				e.manual(local.Account{Username: "site-a-" + n, IDNumber: "DUP-" + n}),
				e.manual(local.Account{Username: "site-b-" + n, IDNumber: "DUP-" + n}),
			}
		}, "refuse", "ambiguous"},
		{"privileged", "username", true, hubtest.User, func(e *env, n, _ string) []local.Account {
			return []local.Account{e.manual(local.Account{Username: n, Privileged: true})}
		}, "refuse", "privileged"},
		{"privileged by email", "email", true, func(n string) scim.User { return verified(hubtest.User(n)) }, func(e *env, n, _ string) []local.Account {
			return []local.Account{e.manual(local.Account{Username: "admin-" + n, Email: n + "@example.org", Privileged: true})}
		}, "refuse", "privileged"},
		{"deleted account is no candidate", "username", true, hubtest.User, func(e *env, n, _ string) []local.Account {
			return []local.Account{e.manual(local.Account{Username: n, Deleted: time.Now()})}
		}, "create", "no local account matches"},
		{"migration off", "username", false, hubtest.User, func(e *env, n, _ string) []local.Account {
			return []local.Account{e.manual(local.Account{Username: n})}
		}, "create", "generated tc username"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{hub: h, settings: map[string]string{
				"migrate-local-accounts": fmt.Sprint(tt.migrate), "account-mapping": tt.key}})
			n := fmt.Sprintf("map%02d", i)
			hu := e.hub.CreateUser(t, tt.hub(n))
			manual := tt.local(e, n, hu.ID)
			p := e.users()
			var item *bridge.Item
			for j := range p.Items {
				if p.Items[j].HubID == hu.ID {
					item = &p.Items[j]
				}
			}
			if item == nil || !strings.Contains(item.Rule, tt.wantRule) {
				t.Fatalf("no item with rule %q for the hub user:\n%s", tt.wantRule, planText(p))
			}
			switch tt.want {
			case "link":
				a := e.account(hu.ID)
				if a.ID != manual[0].ID || a.Auth != local.AuthConnect || item.Action != bridge.ActLink {
					t.Fatalf("not linked: %+v (manual %s)\n%s", a, manual[0].ID, planText(p))
				}
				if a.Username != manual[0].Username {
					t.Fatalf("username changed from %q to %q", manual[0].Username, a.Username)
				}
				// Stable: the next runs keep the link.
				e.full()
				if e.account(hu.ID).ID != manual[0].ID {
					t.Fatal("link lost")
				}
			case "create":
				a := e.account(hu.ID)
				if item.Action != bridge.ActCreate || !strings.HasPrefix(a.Username, "tc") {
					t.Fatalf("want a new account: %+v\n%s", a, planText(p))
				}
			case "refuse":
				e.noAccount(hu.ID)
				if item.Action != bridge.ActRefuse {
					t.Fatalf("want refuse:\n%s", planText(p))
				}
				// Reported again on every run until resolved, never guessed.
				wantAction(t, e.full(), bridge.ActRefuse, 1)
				e.noAccount(hu.ID)
			}
			for _, m := range manual {
				if tt.want == "link" && m.ID == manual[0].ID {
					continue
				}
				got, err := e.dir.Account(e.ctx, m.ID)
				if err != nil || got.Auth != local.AuthManual || got.HubUserID != "" {
					t.Fatalf("manual account %s changed: %+v %v", m.Username, got, err)
				}
			}
		})
	}
}

// TestRemovalActions: a user leaving the bridge's restrict audience is kept,
// suspended or deleted per the setting — through the Changes feed and through a
// full reconcile — and reactivated (or restored) when back in scope.
func TestRemovalActions(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	for _, action := range []string{"keep", "suspend", "delete"} {
		t.Run(action, func(t *testing.T) {
			users := h.CreateUsers(t, "rm-"+action+"-", 4)
			ids := []string{users[0].ID, users[1].ID, users[2].ID, users[3].ID}
			aud := h.CreateGroup(t, "Scope "+action, "audience", ids...)
			url, tok := h.ScopedClient(t, "site-"+action, "--restrict-audience", aud.ID)
			e := newEnv(t, envOpts{hub: h, scimURL: url, token: tok, settings: map[string]string{"removal-action": action}})
			if p := e.users(); p.Counts[bridge.ActCreate] != 4 {
				t.Fatalf("first run:\n%s", planText(p))
			}
			check := func(id string) {
				t.Helper()
				a := e.account(id)
				switch action {
				case "keep":
					if a.Suspended || a.IsDeleted() {
						t.Fatalf("keep: %+v", a)
					}
				case "suspend":
					if !a.Suspended || a.SuspendedBy != local.SuspendedByConnect || a.IsDeleted() {
						t.Fatalf("suspend: %+v", a)
					}
				case "delete":
					if !a.IsDeleted() {
						t.Fatalf("delete: %+v", a)
					}
				}
			}
			// Through the feed (out_of_scope).
			h.RemoveMember(t, aud.ID, users[0].ID)
			p := e.users()
			if p.Mode != "changes" {
				t.Fatalf("mode %s", p.Mode)
			}
			check(users[0].ID)
			// Through a full reconcile (absent from the listing).
			h.RemoveMember(t, aud.ID, users[1].ID)
			e.full()
			check(users[1].ID)
			// The others are untouched.
			for _, u := range users[2:] {
				if a := e.account(u.ID); a.Suspended || a.IsDeleted() {
					t.Fatalf("in-scope user changed: %+v", a)
				}
			}
			// Back in scope: reactivated or restored.
			h.AddMembers(t, aud.ID, users[0].ID, users[1].ID)
			p = e.users()
			for _, u := range users[:2] {
				if a := e.account(u.ID); a.Suspended || a.IsDeleted() {
					t.Fatalf("back in scope but %+v\n%s", a, planText(p))
				}
			}
			switch action {
			case "suspend":
				wantAction(t, p, bridge.ActUnsuspend, 2)
			case "delete":
				wantAction(t, p, bridge.ActRestore, 2)
			}
		})
	}
}

// TestHubDeletion: a user deleted on the hub is soft-deleted whatever the
// removal action, and purged only after the grace period.
func TestHubDeletion(t *testing.T) {
	e := newEnv(t, envOpts{settings: map[string]string{"removal-action": "keep", "delete-grace": "7d"}})
	users := e.hub.CreateUsers(t, "del", 3)
	e.users()
	e.hub.DeleteUser(t, users[0].ID)
	p := e.users()
	wantAction(t, p, bridge.ActDelete, 1)
	a := e.account(users[0].ID)
	if !a.IsDeleted() {
		t.Fatalf("not soft-deleted: %+v", a)
	}
	if _, ok := e.link(users[0].ID); !ok {
		t.Fatal("soft-deleted account unlinked before the purge")
	}
	wantAction(t, e.sync(bridge.TaskCleanup, bridge.RunOptions{}), bridge.ActPurge, 0)
	e.clk.advance(6 * 24 * time.Hour)
	wantAction(t, e.sync(bridge.TaskCleanup, bridge.RunOptions{}), bridge.ActPurge, 0)
	e.clk.advance(2 * 24 * time.Hour)
	wantAction(t, e.sync(bridge.TaskCleanup, bridge.RunOptions{}), bridge.ActPurge, 1)
	e.noAccount(users[0].ID)
	if e.connectCount() != 2 {
		t.Fatalf("%d accounts left", e.connectCount())
	}
}

// TestReactivation: Connect undoes only its own suspensions.
func TestReactivation(t *testing.T) {
	e := newEnv(t, envOpts{})
	users := e.hub.CreateUsers(t, "react", 2)
	e.users()
	// Connect suspends (hub inactive) and reactivates.
	e.hub.SetActive(t, users[0].ID, false)
	e.users()
	if a := e.account(users[0].ID); !a.Suspended || a.SuspendedBy != local.SuspendedByConnect {
		t.Fatalf("%+v", a)
	}
	e.hub.SetActive(t, users[0].ID, true)
	wantAction(t, e.users(), bridge.ActUnsuspend, 1)
	if a := e.account(users[0].ID); a.Suspended {
		t.Fatalf("%+v", a)
	}
	// The site suspends: Connect leaves it suspended.
	a := e.account(users[1].ID)
	if _, _, err := local.PutAccount(e.ctx, e.dir, local.Put{Account: local.Account{ID: a.ID, Suspended: true}, Fields: local.FieldSuspended}); err != nil {
		t.Fatal(err)
	}
	e.hub.SetActive(t, users[1].ID, false)
	e.users()
	e.hub.SetActive(t, users[1].ID, true)
	e.users()
	e.full()
	if a := e.account(users[1].ID); !a.Suspended || a.SuspendedBy != "" {
		t.Fatalf("site suspension undone: %+v", a)
	}
}

// TestLockedGroups: hub audiences and courses become groups the site cannot
// edit.
func TestLockedGroups(t *testing.T) {
	e := newEnv(t, envOpts{})
	users := e.hub.CreateUsers(t, "grp", 3)
	g := e.hub.CreateGroup(t, "Audience A", "audience", users[0].ID, users[1].ID)
	e.users()
	e.groups()
	lg, members := e.group(g.ID)
	if !lg.Locked || len(members) != 2 {
		t.Fatalf("%+v %v", lg, members)
	}
	if _, err := e.dir.AddMembers(e.ctx, local.ActorSite, lg.ID, []string{e.account(users[2].ID).ID}); err == nil {
		t.Fatal("the site changed a locked group")
	}
	if err := e.dir.DeleteGroup(e.ctx, local.ActorSite, lg.ID); err == nil {
		t.Fatal("the site deleted a locked group")
	}
	// A site-made local group is never touched by a full pass.
	own, _, err := e.dir.PutGroup(e.ctx, local.ActorSite, local.Group{Name: "Site group", Kind: local.KindLocal})
	if err != nil {
		t.Fatal(err)
	}
	e.sync(bridge.TaskCollections, bridge.RunOptions{Full: true})
	if _, err := e.dir.Group(e.ctx, own.ID); err != nil {
		t.Fatalf("site group gone: %v", err)
	}
	// A new hub user joins the group: the collections task sees the change
	// before the users task made the account; the account joins the group when
	// it is created, without waiting for a full collections pass.
	late := e.hub.CreateUser(t, hubtest.User("grp-late"))
	e.hub.AddMembers(t, g.ID, late.ID)
	e.groups()
	if _, members := e.group(g.ID); len(members) != 2 {
		t.Fatalf("members before the account exists: %v", members)
	}
	e.users()
	if _, members := e.group(g.ID); len(members) != 3 {
		t.Fatalf("new account did not join its group: %v", members)
	}
	if p := e.groups(); p.Counts[bridge.ActMembers] != 0 {
		t.Fatalf("collections after the join:\n%s", planText(p))
	}

	// Renamed on the hub.
	e.hub.Patch(t, "/Groups/"+g.ID, map[string]any{"op": "replace", "path": "displayName", "value": "Audience B"})
	e.groups()
	if lg, _ := e.group(g.ID); lg.Name != "Audience B" {
		t.Fatalf("not renamed: %+v", lg)
	}
}
