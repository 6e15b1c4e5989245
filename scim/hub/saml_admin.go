package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim/store"
)

// ErrNoIdPStore is returned by the SAML admin functions when the store has
// no IdP state (store.IdP).
var ErrNoIdPStore = errors.New("store has no SAML IdP state")

func idpStore(st store.Store) (store.IdP, error) {
	ist, ok := st.(store.IdP)
	if !ok {
		return nil, ErrNoIdPStore
	}
	return ist, nil
}

// RegisterServiceProvider checks SP metadata (idp.ParseSPMetadata: an
// http(s) ACS with the HTTP-POST binding, no other URL schemes) and
// registers the SP, or replaces its metadata when replace is set. It
// returns the entity ID and writes an audit entry.
func RegisterServiceProvider(ctx context.Context, st store.Store, actor string, metadata []byte, source string, replace bool) (string, error) {
	ist, err := idpStore(st)
	if err != nil {
		return "", err
	}
	ed, err := idp.ParseSPMetadata(metadata)
	if err != nil {
		return "", err
	}
	sp := store.ServiceProvider{EntityID: ed.EntityID, Metadata: metadata, Source: source}
	action := "sp.add"
	_, err = ist.CreateServiceProvider(ctx, sp)
	if errors.Is(err, store.ErrConflict) && replace {
		action = "sp.replace"
		_, err = ist.ReplaceServiceProvider(ctx, sp)
	}
	if errors.Is(err, store.ErrConflict) {
		return "", fmt.Errorf("service provider %s is already registered (use --replace to update its metadata): %w", ed.EntityID, err)
	}
	if err != nil {
		return "", fmt.Errorf("register service provider %s: %w", ed.EntityID, err)
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: actor, Action: action, Target: ed.EntityID, Detail: source}); err != nil {
		return "", fmt.Errorf("audit: %w", err)
	}
	return ed.EntityID, nil
}

// AddServiceProvider reads SP metadata from a file or http(s) URL and
// registers it (see RegisterServiceProvider).
func AddServiceProvider(ctx context.Context, st store.Store, actor, fileOrURL string, client *http.Client, replace bool) (string, error) {
	data, _, err := idp.LoadSPMetadata(ctx, client, fileOrURL)
	if err != nil {
		return "", err
	}
	return RegisterServiceProvider(ctx, st, actor, data, fileOrURL, replace)
}

// ListServiceProviders returns the registered SPs.
func ListServiceProviders(ctx context.Context, st store.Store) ([]store.ServiceProvider, error) {
	ist, err := idpStore(st)
	if err != nil {
		return nil, err
	}
	return ist.ListServiceProviders(ctx)
}

// RemoveServiceProvider unregisters an SP. store.ErrNotFound.
func RemoveServiceProvider(ctx context.Context, st store.Store, actor, entityID string) error {
	ist, err := idpStore(st)
	if err != nil {
		return err
	}
	if err := ist.DeleteServiceProvider(ctx, entityID); err != nil {
		return err
	}
	return st.Audit(ctx, store.AuditEntry{Actor: actor, Action: "sp.remove", Target: entityID})
}

// UnlockUser clears the failed-login counter and lockout of userName.
// store.ErrNotFound when no user has that name.
func UnlockUser(ctx context.Context, st store.Store, actor, userName string) error {
	ist, err := idpStore(st)
	if err != nil {
		return err
	}
	u, err := st.UserByUserName(ctx, userName)
	if err != nil {
		return fmt.Errorf("find user %q: %w", userName, err)
	}
	for _, key := range []string{idp.AccountKey(userName), idp.AccountKey(u.UserName)} {
		if err := ist.ClearLoginThrottle(ctx, key); err != nil {
			return err
		}
	}
	return st.Audit(ctx, store.AuditEntry{Actor: actor, Action: "user.unlock", Target: u.ID + " " + u.UserName})
}

// RotateSigningKey publishes a new signing key that starts signing after
// overlap (idp.Rotate). hubURL names the certificate's subject.
func RotateSigningKey(ctx context.Context, st store.Store, actor, hubURL, alg string, overlap time.Duration, now time.Time) (store.SigningKey, error) {
	ist, err := idpStore(st)
	if err != nil {
		return store.SigningKey{}, err
	}
	cn := "connect-hub"
	if u, err := url.Parse(hubURL); err == nil && u.Hostname() != "" {
		cn = u.Hostname()
	}
	k, err := idp.Rotate(ctx, samlStore{st: st, idp: ist}, alg, cn, overlap, now)
	if err != nil {
		return store.SigningKey{}, err
	}
	detail := fmt.Sprintf("%s, signs from %s", k.Algorithm, k.ActiveFrom.UTC().Format(time.RFC3339))
	if k.ActiveFrom.IsZero() {
		detail = k.Algorithm + ", signs now (the hub had no signing key)"
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: actor, Action: "saml.key-rotate", Target: k.ID, Detail: detail}); err != nil {
		return store.SigningKey{}, fmt.Errorf("audit: %w", err)
	}
	return store.SigningKey(k), nil
}

// SigningKeys lists the IdP signing keys (private keys included: callers
// never print them).
func SigningKeys(ctx context.Context, st store.Store) ([]store.SigningKey, error) {
	ist, err := idpStore(st)
	if err != nil {
		return nil, err
	}
	return ist.SigningKeys(ctx)
}
