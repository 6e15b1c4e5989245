package idp

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Sentinel errors of the interfaces below; implementations wrap them.
var (
	// ErrNotFound: no user, session, service provider or key matches.
	ErrNotFound = errors.New("idp: not found")
	// ErrConflict: the object exists (a signing key for the same start time,
	// a session with the same hash).
	ErrConflict = errors.New("idp: conflict")
)

// User is what the IdP needs to know about a hub user.
type User struct {
	// ID is the user's SCIM id: the persistent NameID.
	ID          string
	UserName    string
	Email       string
	GivenName   string
	FamilyName  string
	DisplayName string
	// Active is false for a suspended user, who cannot log in.
	Active bool
	// PasswordHash is an argon2id or bcrypt PHC string ("" = no password).
	PasswordHash string
	// Groups are the names of the user's audiences (the "groups" attribute).
	Groups []string
}

// Users looks up hub users.
type Users interface {
	// UserByUserName finds a user case-insensitively. ErrNotFound.
	UserByUserName(ctx context.Context, userName string) (User, error)
	// UserByID returns the user with that SCIM id. ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// SetPasswordHash replaces the user's password hash (used to upgrade a
	// bcrypt or weak argon2id hash after a successful login). ErrNotFound.
	SetPasswordHash(ctx context.Context, id, hash string) error
}

// Session is a hub login session. Only the SHA-256 hash of the cookie value
// is stored.
type Session struct {
	Hash    []byte
	Index   string // SessionIndex in assertions (public)
	UserID  string
	Created time.Time
	Expires time.Time
}

// Participant is a service provider that received an assertion for a session.
type Participant struct {
	ServiceProvider string
	NameID          string
	NameIDFormat    string
	NameQualifier   string
	SPNameQualifier string
	SessionIndex    string
}

// Sessions stores login sessions so that every hub replica sees them.
type Sessions interface {
	// CreateSession stores s. ErrConflict if its hash exists.
	CreateSession(ctx context.Context, s Session) error
	// Session returns the session with that hash, expired or not. ErrNotFound.
	Session(ctx context.Context, hash []byte) (Session, error)
	// SessionsOfUser returns the user's sessions.
	SessionsOfUser(ctx context.Context, userID string) ([]Session, error)
	// DeleteSession ends a session; ending an unknown one is not an error.
	DeleteSession(ctx context.Context, hash []byte) error
	// AddParticipant records a service provider of the session. ErrNotFound
	// if the session is gone.
	AddParticipant(ctx context.Context, hash []byte, p Participant) error
	// Participants returns the service providers of the session.
	Participants(ctx context.Context, hash []byte) ([]Participant, error)
}

// ServiceProvider is a registered SAML service provider.
type ServiceProvider struct {
	EntityID string
	// Metadata is the SP's metadata XML as registered (see ParseSPMetadata).
	Metadata []byte
}

// ServiceProviders looks up registered service providers.
type ServiceProviders interface {
	// ServiceProvider returns the SP with that entity ID. ErrNotFound.
	ServiceProvider(ctx context.Context, entityID string) (ServiceProvider, error)
}

// Key is a signing key pair in PEM form: a PKCS#8 private key and its X.509
// certificate. It signs from ActiveFrom (the zero time for the first key)
// until the next key's ActiveFrom.
type Key struct {
	ID         string
	Algorithm  string // AlgRSA | AlgECDSA
	KeyPEM     []byte
	CertPEM    []byte
	ActiveFrom time.Time
	Created    time.Time
}

// Keys stores the signing keys.
type Keys interface {
	// SigningKeys returns every key ordered by ActiveFrom.
	SigningKeys(ctx context.Context) ([]Key, error)
	// AddSigningKey stores k. ErrConflict if a key with that ID or
	// ActiveFrom exists.
	AddSigningKey(ctx context.Context, k Key) error
}

// Throttle is the failed-login counter of one account or source address.
type Throttle struct {
	Failures    int
	LockedUntil time.Time
}

// Throttles counts failed logins across replicas.
type Throttles interface {
	// LoginThrottle returns the counter of key (zero when none).
	LoginThrottle(ctx context.Context, key string) (Throttle, error)
	// RecordLoginFailure counts a failure at now: a counter older than
	// window restarts; reaching limit locks key until now+lockout.
	RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration, limit int, lockout time.Duration) (Throttle, error)
	// ClearLoginThrottle forgets key's failures and lockout.
	ClearLoginThrottle(ctx context.Context, key string) error
}

// AccountKey is the Throttles key of an account; `connect hub users unlock`
// clears it.
func AccountKey(userName string) string { return "user:" + strings.ToLower(userName) }

// AddressKey is the Throttles key of a source address.
func AddressKey(addr string) string { return "ip:" + addr }

// Scopes decides which users the IdP may assert to which service provider
// (DESIGN.md §4: a bridge's SP only gets users in its client's scope).
type Scopes interface {
	// MayAssert reports whether the user may be logged in to the SP.
	MayAssert(ctx context.Context, spEntityID, userID string) (bool, error)
}
