package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// mapping is the outcome of account mapping for one hub user.
type mapping struct {
	// account is the local account to convert (nil: none matched).
	account *local.Account
	// refuse is set when the user must not be synced (and no account created):
	// an ambiguous match, a privileged account, or a match on a target that
	// cannot tell privileged accounts.
	refuse string
	// rule explains the outcome.
	rule string
}

// mapAccount finds the manual local account a hub user takes over when
// migrate-local-accounts is on (DESIGN.md §6): by the configured key; only
// non-deleted manual accounts are candidates; more than one is ambiguous
// (refused and reported, never "lowest id wins"); email needs the hub to say
// it is verified; a privileged account is never taken over. A target that
// cannot mark privileged accounts (a SCIM target without metadata reads every
// account as unprivileged) takes part in no mapping: a match there may be a
// site administrator, so the user is refused like a privileged match, and the
// account is never taken over on the strength of a flag the target cannot hold.
func (r *run) mapAccount(ctx context.Context, u *scim.User) (mapping, error) {
	key := r.set.AccountMapping
	var (
		cands []local.Account
		value string
		err   error
	)
	switch key {
	case MapUsername:
		value = u.UserName
		if value != "" {
			var a local.Account
			a, err = r.e.cfg.Target.AccountByUsername(ctx, value)
			if errors.Is(err, local.ErrNotFound) || errors.Is(err, local.ErrInvalid) {
				err = nil
			} else if err == nil {
				cands = []local.Account{a}
			}
		}
	case MapEmail:
		value = u.PrimaryEmail()
		if value != "" {
			if u.Connect == nil || u.Connect.EmailVerified == nil || !bool(*u.Connect.EmailVerified) {
				return mapping{rule: "email not verified by the hub: not mapped by email"}, nil
			}
			cands, err = r.e.cfg.Target.AccountsByEmail(ctx, value)
		}
	case MapIDNumber:
		if u.Enterprise != nil {
			value = u.Enterprise.EmployeeNumber
		}
		if value != "" {
			cands, err = r.e.cfg.Target.AccountsByIDNumber(ctx, value)
		}
	case MapUniqueID:
		value = u.ID
		cands, err = r.e.cfg.Target.AccountsByIDNumber(ctx, value)
	default:
		return mapping{}, fmt.Errorf("%w: account-mapping %q", ErrInvalidSetting, key)
	}
	if err != nil {
		return mapping{}, fmt.Errorf("account mapping: local directory: %w", err)
	}
	var live []local.Account
	for _, a := range cands {
		if a.Auth == local.AuthManual && !a.IsDeleted() {
			live = append(live, a)
		}
	}
	what := fmt.Sprintf("%s %q", key, value)
	switch {
	case len(live) == 0:
		return mapping{rule: "no local account matches by " + what}, nil
	case len(live) > 1:
		names := ""
		for i, a := range live {
			if i > 0 {
				names += ", "
			}
			names += a.Username
		}
		return mapping{refuse: fmt.Sprintf("ambiguous mapping: %d local accounts match by %s (%s); refused, resolve by hand", len(live), what, names)}, nil
	case live[0].Privileged:
		return mapping{refuse: fmt.Sprintf("privileged local account %q matches by %s: never taken over", live[0].Username, what)}, nil
	case !r.e.cfg.Target.Capabilities().Privileged:
		return mapping{refuse: fmt.Sprintf("target cannot mark privileged accounts; mapping refused: local account %q matches by %s "+
			"(it may be a site administrator; enable the target's metadata or resolve by hand)", live[0].Username, what)}, nil
	}
	a := live[0]
	rule := "account mapping by " + string(key) + ": local account converted to a connect account"
	if key == MapEmail {
		rule = "account mapping by verified email: local account converted to a connect account"
	}
	return mapping{account: &a, rule: rule}, nil
}
