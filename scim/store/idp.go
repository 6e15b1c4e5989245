package store

import (
	"context"
	"time"
)

// IdP is an optional ability of a Store: the shared state of the hub's SAML
// identity provider (DESIGN.md §4). It lives in the directory database so that
// several hub replicas share sessions, registered service providers, signing
// keys and login throttles. Callers discover it with a type assertion; both
// SQL backends implement it and pass storetest.RunIdP.
type IdP interface {
	// CreateIdPSession stores a new session. ErrConflict if its hash exists;
	// ErrInvalid when Hash, UserID or Expires is missing.
	CreateIdPSession(ctx context.Context, s IdPSession) error
	// IdPSession returns the session with that hash (expired ones included:
	// the caller compares Expires with its clock). ErrNotFound.
	IdPSession(ctx context.Context, hash []byte) (IdPSession, error)
	// IdPSessionsOfUser returns the user's sessions, oldest first.
	IdPSessionsOfUser(ctx context.Context, userID string) ([]IdPSession, error)
	// DeleteIdPSession removes a session and its participants. Deleting a
	// session that does not exist is not an error.
	DeleteIdPSession(ctx context.Context, hash []byte) error
	// DeleteExpiredIdPSessions removes the sessions that expired before t and
	// returns how many.
	DeleteExpiredIdPSessions(ctx context.Context, t time.Time) (int64, error)
	// AddIdPSessionParticipant records that an assertion for the session was
	// issued to a service provider. Recording the same service provider again
	// replaces its row. ErrNotFound if the session does not exist.
	AddIdPSessionParticipant(ctx context.Context, hash []byte, p IdPParticipant) error
	// IdPSessionParticipants returns the participants of a session in the
	// order they were first recorded.
	IdPSessionParticipants(ctx context.Context, hash []byte) ([]IdPParticipant, error)

	// CreateServiceProvider registers a SAML service provider. ErrConflict if
	// its entity ID is registered; ErrInvalid when EntityID or Metadata is
	// empty.
	CreateServiceProvider(ctx context.Context, sp ServiceProvider) (ServiceProvider, error)
	// ReplaceServiceProvider replaces the metadata (and source) of a
	// registered service provider. ErrNotFound.
	ReplaceServiceProvider(ctx context.Context, sp ServiceProvider) (ServiceProvider, error)
	// ServiceProvider returns the service provider with that entity ID
	// (compared exactly, as SAML requires). ErrNotFound.
	ServiceProvider(ctx context.Context, entityID string) (ServiceProvider, error)
	// ListServiceProviders returns every service provider ordered by entity ID.
	ListServiceProviders(ctx context.Context) ([]ServiceProvider, error)
	// DeleteServiceProvider unregisters a service provider. ErrNotFound.
	DeleteServiceProvider(ctx context.Context, entityID string) error

	// AddSigningKey stores a signing key. ErrConflict if a key with the same
	// ID or the same ActiveFrom exists (so that replicas generating the first
	// key at once keep only one); ErrInvalid when a field is missing.
	AddSigningKey(ctx context.Context, k SigningKey) error
	// SigningKeys returns every signing key ordered by ActiveFrom.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// DeleteSigningKey removes a key. ErrNotFound.
	DeleteSigningKey(ctx context.Context, id string) error

	// LoginThrottle returns the failure counter of key ("user:NAME",
	// "ip:ADDR"); the zero LoginThrottle (with Key set) when there is none.
	LoginThrottle(ctx context.Context, key string) (LoginThrottle, error)
	// RecordLoginFailure atomically counts one failed login for key at now.
	// A counter whose window started before now-window restarts at 1. When
	// the count reaches limit (limit > 0), LockedUntil becomes now+lockout.
	// It returns the counter after the update.
	RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration, limit int, lockout time.Duration) (LoginThrottle, error)
	// ClearLoginThrottle removes the counter and lockout of key. Clearing a
	// key that has none is not an error.
	ClearLoginThrottle(ctx context.Context, key string) error
	// DeleteStaleLoginThrottles removes the counters whose window started
	// before t and whose lockout (if any) ended before t; it returns how many.
	DeleteStaleLoginThrottles(ctx context.Context, t time.Time) (int64, error)

	// UserGroupNames returns the display names of the groups of that kind
	// (e.g. scim.KindAudience) the user is a direct member of, sorted
	// case-insensitively. Unknown users have none.
	UserGroupNames(ctx context.Context, userID, kind string) ([]string, error)
}

// IdPSession is a login session at the hub's IdP. Only the SHA-256 hash of the
// session cookie is stored.
type IdPSession struct {
	Hash []byte
	// Index is the public SessionIndex put in assertions.
	Index   string
	UserID  string
	Created time.Time
	Expires time.Time
}

// IdPParticipant is a service provider that received an assertion for a
// session (single logout sends it a LogoutRequest).
type IdPParticipant struct {
	ServiceProvider string // entity ID
	NameID          string
	NameIDFormat    string
	NameQualifier   string
	SPNameQualifier string
	SessionIndex    string
}

// ServiceProvider is a registered SAML service provider: its metadata as
// submitted (the IdP parses it), where it came from, and the client system
// it belongs to ("" when registered by hand).
type ServiceProvider struct {
	EntityID string
	Metadata []byte
	Source   string
	ClientID string
	Created  time.Time
	Modified time.Time
}

// SigningKey is an IdP signing key pair in PEM form (PKCS#8 key, X.509
// certificate). It signs from ActiveFrom until the next key's ActiveFrom; a
// key whose ActiveFrom is in the future is published in metadata but does not
// sign yet.
type SigningKey struct {
	ID         string
	Algorithm  string // "rsa-sha256" | "ecdsa-sha256"
	KeyPEM     []byte
	CertPEM    []byte
	ActiveFrom time.Time
	Created    time.Time
}

// LoginThrottle counts failed logins for one account or source address.
type LoginThrottle struct {
	Key         string
	Failures    int
	WindowStart time.Time
	LockedUntil time.Time
}
