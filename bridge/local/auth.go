package local

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/connectsso/connect/scim/password"
)

// AuthOptions tunes Authenticate.
type AuthOptions struct {
	// AllowConnect lets a connect account log in with its synced password hash.
	// The caller sets it only while the account's hub cannot be reached (DESIGN.md
	// §6: connect accounts log in through SSO otherwise).
	AllowConnect bool
}

// dummyHash is verified for unknown usernames so that an unknown user costs as
// much time as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := password.Hash("connect-dummy-password-never-matches")
	if err != nil {
		return ""
	}
	return h
})

// PutAccount writes one Put with PutAccounts and returns its result; the item's
// error is returned as the error.
func PutAccount(ctx context.Context, d Directory, p Put) (Account, Op, error) {
	rs, err := d.PutAccounts(ctx, []Put{p})
	if err != nil {
		return Account{}, "", err
	}
	if len(rs) != 1 {
		return Account{}, "", fmt.Errorf("put account: %d results for 1 item: %w", len(rs), ErrUnavailable)
	}
	return rs[0].Account, rs[0].Op, rs[0].Err
}

// Authenticate checks a local password: it finds the account by username
// (case-insensitively) and verifies password against its PasswordHash (argon2id
// PHC or bcrypt, scim/password). It returns the account on success.
//
// It fails with ErrAuthFailed for an unknown username, a wrong password, an
// account without a usable hash, a soft-deleted account, or a connect account
// while opts.AllowConnect is false — the same error for each, and an unknown
// username costs one hash verification like a known one. A correct password of a
// suspended account is ErrSuspended. Other errors (ErrUnavailable) come from the
// directory. The cause is in the wrapped message, which callers log but never show.
//
// When a manual account's hash is bcrypt or weaker than password.Hash makes, it is
// replaced by a fresh argon2id hash (best effort: a failed rehash does not fail the
// login). Connect accounts' hashes belong to the hub and are never rewritten.
func Authenticate(ctx context.Context, d Directory, username, pw string, opts AuthOptions) (Account, error) {
	a, err := d.AccountByUsername(ctx, username)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
		password.Verify(dummyHash(), pw) //nolint:errcheck // timing only
		return Account{}, fmt.Errorf("unknown username: %w", ErrAuthFailed)
	}
	if err != nil {
		return Account{}, err
	}
	if a.PasswordHash == "" {
		password.Verify(dummyHash(), pw) //nolint:errcheck // timing only
		return Account{}, fmt.Errorf("account %s has no password hash: %w", a.ID, ErrAuthFailed)
	}
	ok, rehash, err := password.Verify(a.PasswordHash, pw)
	switch {
	case err != nil:
		return Account{}, fmt.Errorf("account %s: unusable password hash (%v): %w", a.ID, err, ErrAuthFailed)
	case !ok:
		return Account{}, fmt.Errorf("account %s: wrong password: %w", a.ID, ErrAuthFailed)
	case a.IsDeleted():
		return Account{}, fmt.Errorf("account %s is deleted: %w", a.ID, ErrAuthFailed)
	case a.Auth == AuthConnect && !opts.AllowConnect:
		return Account{}, fmt.Errorf("account %s is a connect account (SSO only): %w", a.ID, ErrAuthFailed)
	case a.Suspended:
		return Account{}, fmt.Errorf("account %s: %w", a.ID, ErrSuspended)
	}
	if rehash && a.Auth == AuthManual && d.Capabilities().PasswordHashes {
		if h, herr := password.Hash(pw); herr == nil {
			if na, _, perr := PutAccount(ctx, d, Put{Account: Account{ID: a.ID, PasswordHash: h}, Fields: FieldPasswordHash}); perr == nil {
				a = na
			}
		}
	}
	return a, nil
}
