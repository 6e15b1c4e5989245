package hub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/connectsso/connect/scim/store"
)

// TokenPrefix starts every admin token so that secret scanners and people can
// recognise one.
const TokenPrefix = "chub_"

// tokenBytes of randomness: 256 bits.
const tokenBytes = 32

// HashToken returns the SHA-256 of a token secret, the only form the store keeps.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NewTokenSecret returns a fresh token: TokenPrefix followed by 256 random bits in
// unpadded base64url.
func NewTokenSecret() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token randomness: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// CreateToken mints an admin token named name, stores its hash and writes an audit
// entry naming actor. It returns the secret, which is shown once and never stored.
func CreateToken(ctx context.Context, st store.Store, actor, name string, readOnly bool) (string, store.Token, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", store.Token{}, fmt.Errorf("token name: %w: empty", store.ErrInvalid)
	}
	secret, err := NewTokenSecret()
	if err != nil {
		return "", store.Token{}, err
	}
	t, err := st.CreateToken(ctx, store.Token{Name: name, Hash: HashToken(secret), ReadOnly: readOnly})
	if err != nil {
		return "", store.Token{}, fmt.Errorf("create token %q: %w", name, err)
	}
	detail := "read-write"
	if readOnly {
		detail = "read-only"
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: actor, Action: "token.create", Target: t.ID + " " + t.Name, Detail: detail}); err != nil {
		return "", store.Token{}, fmt.Errorf("audit token create: %w", err)
	}
	return secret, t, nil
}

// RevokeToken revokes the token with that id or name and writes an audit entry.
// store.ErrNotFound when no token matches.
func RevokeToken(ctx context.Context, st store.Store, actor, idOrName string) error {
	if err := st.RevokeToken(ctx, idOrName); err != nil {
		return fmt.Errorf("revoke token %q: %w", idOrName, err)
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: actor, Action: "token.revoke", Target: idOrName}); err != nil {
		return fmt.Errorf("audit token revoke: %w", err)
	}
	return nil
}
