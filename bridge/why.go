package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
)

// Reason is one link of the rule chain behind a local account's state.
type Reason struct {
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

// Why explains a local account: who owns it, how its username came about, how
// it stands against the hub right now, which fields the site keeps, why it is
// suspended or deleted, and what the last plans did to it.
func (e *Engine) Why(ctx context.Context, username string) (local.Account, []Reason, error) {
	a, err := e.cfg.Target.AccountByUsername(ctx, username)
	if err != nil {
		return local.Account{}, nil, err
	}
	set, err := LoadSettings(ctx, e.cfg.Records)
	if err != nil {
		return a, nil, err
	}
	var out []Reason
	add := func(rule, format string, args ...any) {
		out = append(out, Reason{Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}

	if a.Auth == local.AuthManual {
		add("owner", "manual account: made by the site; Connect never changes it")
		switch {
		case !set.MigrateLocalAccounts:
			add("mapping", "migrate-local-accounts is off: no hub user takes this account over")
		case a.Privileged:
			add("mapping", "privileged account: account mapping never takes it over")
		case !e.cfg.Target.Capabilities().Privileged:
			add("mapping", "the local directory cannot mark privileged accounts: account mapping takes over no account (a match is refused)")
		case a.IsDeleted():
			add("mapping", "deleted: not a mapping candidate")
		default:
			add("mapping", "a hub user whose %s matches takes this account over (account-mapping %s%s)",
				mappingField(set.AccountMapping), set.AccountMapping, map[bool]string{true: ", verified emails only", false: ""}[set.AccountMapping == MapEmail])
		}
		e.whyStatus(&out, a, set)
		e.whyGroups(ctx, &out, a)
		return a, out, nil
	}

	srv, serr := FindServer(ctx, e.cfg.Records, a.Server)
	if serr != nil {
		add("owner", "connect account of server %s, which is no longer connected: nothing syncs it", a.Server)
	} else {
		add("owner", "connect account of server %s, hub user %s (logs in through SSO)", srv, a.HubUserID)
	}
	gen := false
	for i := 0; i < 6; i++ {
		if a.Username == GeneratedUsername(a.Server, a.HubUserID, i) {
			gen = true
		}
	}
	switch {
	case gen:
		add("username", "generated (tc + a hash of server and hub user id): stable, unique, never the hub's userName")
	case excluded(set.Exclusions, "userName"):
		add("username", "kept from the local account that account mapping converted")
	default:
		add("username", "follows the hub's userName (userName is not excluded)")
	}

	if serr == nil {
		l, lerr := e.cfg.State.LinkByLocal(ctx, a.Server, state.KindUser, a.ID)
		switch {
		case errors.Is(lerr, state.ErrNotFound):
			add("state", "not in the link map: the next full reconcile links it again (from the local directory)")
		case lerr != nil:
			add("state", "link map unreadable: %v", lerr)
		default:
			add("state", "linked to hub user %s (content hash %s)", l.HubID, orDash(l.Hash))
		}
		e.whyHub(ctx, &out, srv, a, set)
	}
	if ex := excludedMask(set.Exclusions); ex != 0 {
		add("exclusions", "the site keeps its own %s (excluded from sync: %s)", strings.Join(fieldNames(ex), ", "), strings.Join(set.Exclusions, ", "))
	}
	e.whyStatus(&out, a, set)
	e.whyGroups(ctx, &out, a)
	if serr == nil {
		e.whyPlans(ctx, &out, srv, a)
	}
	return a, out, nil
}

func mappingField(k MappingKey) string {
	switch k {
	case MapUsername:
		return "userName"
	case MapEmail:
		return "email"
	case MapIDNumber:
		return "employeeNumber (ID number)"
	}
	return "id (Connect unique ID, in this account's ID number)"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (e *Engine) whyHub(ctx context.Context, out *[]Reason, srv Server, a local.Account, set Settings) {
	src, err := e.source(srv)
	if err != nil {
		*out = append(*out, Reason{"hub", "source unusable: " + err.Error()})
		return
	}
	u, err := src.GetUser(ctx, a.HubUserID)
	switch {
	case errors.Is(err, ErrGone):
		*out = append(*out, Reason{"hub", "the hub no longer serves this user (deleted there, or out of this bridge's scope)"})
		return
	case err != nil:
		*out = append(*out, Reason{"hub", "hub unreachable: " + err.Error()})
		return
	}
	*out = append(*out, Reason{"hub", fmt.Sprintf("hub user %q is in scope, active=%v", u.UserName, u.IsActive())})
	prof := makeProfile(&u, set.Exclusions, storable(e.cfg.Target))
	mask := prof.mask
	if prof.copyUserName {
		mask |= local.FieldUsername
	}
	if ch := changedFields(a, prof.acct, mask); ch != 0 {
		*out = append(*out, Reason{"sync", "pending: the next run updates " + strings.Join(fieldNames(ch), ", ")})
	} else {
		*out = append(*out, Reason{"sync", "every synced field is in step with the hub"})
	}
}

func (e *Engine) whyStatus(out *[]Reason, a local.Account, set Settings) {
	switch {
	case a.IsDeleted() && a.Auth == local.AuthConnect:
		*out = append(*out, Reason{"deleted", fmt.Sprintf("soft-deleted at %s (deleted on the hub, or removal-action delete); the cleanup task purges it after %s, at %s",
			a.Deleted.Format("2006-01-02 15:04 MST"), FormatDuration(set.DeleteGrace), a.Deleted.Add(set.DeleteGrace).Format("2006-01-02 15:04 MST"))})
	case a.IsDeleted():
		*out = append(*out, Reason{"deleted", "deleted by the site at " + a.Deleted.Format("2006-01-02 15:04 MST")})
	}
	switch {
	case a.Suspended && a.SuspendedBy == local.SuspendedByConnect:
		*out = append(*out, Reason{"suspended", "suspended by Connect (hub user inactive, or left scope with removal-action suspend); reactivated when active and in scope again"})
	case a.Suspended:
		*out = append(*out, Reason{"suspended", "suspended by the site: Connect never reactivates it"})
	default:
		*out = append(*out, Reason{"active", "not suspended"})
	}
}

func (e *Engine) whyGroups(ctx context.Context, out *[]Reason, a local.Account) {
	ids, err := e.cfg.Target.AccountGroups(ctx, a.ID)
	if err != nil || len(ids) == 0 {
		return
	}
	var names []string
	for _, id := range ids {
		g, err := e.cfg.Target.Group(ctx, id)
		if err != nil {
			continue
		}
		n := g.Name
		if g.Locked {
			n += " (" + string(g.Kind) + ", locked: from the hub)"
		}
		names = append(names, n)
	}
	*out = append(*out, Reason{"groups", strings.Join(names, "; ")})
}

func (e *Engine) whyPlans(ctx context.Context, out *[]Reason, srv Server, a local.Account) {
	sps, err := e.cfg.State.Plans(ctx, srv.ID)
	if err != nil {
		return
	}
	for _, sp := range sps {
		p, err := DecodePlan(sp)
		if err != nil {
			continue
		}
		for _, it := range p.Items {
			if it.LocalID != a.ID && (it.HubID == "" || it.HubID != a.HubUserID) {
				continue
			}
			d := fmt.Sprintf("plan %s (%s, %s %s): %s — %s", p.ID, p.Task, p.Status, p.Created.Format("2006-01-02 15:04"), it.Action, it.Rule)
			if len(it.Fields) > 0 {
				d += " [" + strings.Join(it.Fields, ", ") + "]"
			}
			if it.Error != "" {
				d += " (error: " + it.Error + ")"
			}
			*out = append(*out, Reason{"last plan", d})
		}
	}
}
