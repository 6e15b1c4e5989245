package sp

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors of the interfaces below; implementations wrap them and the SP
// matches them with errors.Is.
var (
	// ErrNotFound: no such session (Sessions.GetSession).
	ErrNotFound = errors.New("sp: not found")
	// ErrNotAllowed: the account exists but may not log in to this site
	// (suspended, deleted, or refused by a site rule). Accounts returns it.
	ErrNotAllowed = errors.New("sp: account not allowed")
	// ErrOutOfScope: the hub user is not in this bridge's scope (outside the
	// restricted audience). Accounts returns it.
	ErrOutOfScope = errors.New("sp: user out of scope")
	// ErrInvalid: LocalAuth refused the credentials (unknown user, wrong
	// password, no usable password, an account that must log in through a hub).
	// The page never says which.
	ErrInvalid = errors.New("sp: invalid credentials")
)

// Hub is one connected hub as the SP sees it.
type Hub struct {
	// ID is the bridge's server id of the hub (stable; the Sessions and
	// ReplayCache key). It appears in /saml/login?hub=ID.
	ID string
	// Name is the display name on the login button.
	Name string
	// Metadata is the hub's IdP metadata XML, pinned at connection time: its
	// signing keys are the only ones trusted for this hub.
	Metadata []byte
	// KeyPEM and CertPEM, when both set, are the SP key pair used with this hub
	// (signing AuthnRequests and logout messages, decrypting assertions). Empty:
	// Config.KeyPEM/CertPEM. The metadata publishes every certificate in use.
	KeyPEM, CertPEM []byte
}

// Hubs lists the connected hubs. The SP asks on every login and SLO message,
// so a hub connected or removed at run time is seen at once. The SP keeps the
// byte slices of the Hubs it is given and hashes them only when it gets other
// slices: an implementation may hand out the same slices again (a cached
// list) but never changes their bytes in place.
type Hubs interface {
	// Hubs returns the connected hubs in the order of the login page.
	Hubs(ctx context.Context) ([]Hub, error)
}

// StoredSession is one record of the Sessions store: a browser session, or a
// pending login or logout request. ID is the SHA-256 hash (hex) of the secret
// the browser holds, never the secret itself. Hub and Subject index browser
// sessions of hub users for single logout; they are empty on other records.
// Data is the SP's own encoding.
type StoredSession struct {
	ID      string
	Hub     string
	Subject string
	Data    []byte
	// Expires is set by PutSession (now + ttl) and returned by GetSession.
	Expires time.Time
}

// Sessions stores sessions so that every replica sees them (Redis in
// production). It is shaped like the bridge state's session methods, so the
// bridge adapts its state with a few lines. All methods are safe for
// concurrent use.
type Sessions interface {
	// PutSession creates or replaces s.ID, expiring after ttl.
	PutSession(ctx context.Context, s StoredSession, ttl time.Duration) error
	// GetSession returns an unexpired record; an error matching ErrNotFound when
	// there is none.
	GetSession(ctx context.Context, id string) (StoredSession, error)
	// DeleteSession removes a record; an absent one is not an error.
	DeleteSession(ctx context.Context, id string) error
	// DeleteSessions removes every session of (hub, subject) and returns how
	// many existed (single logout from the hub).
	DeleteSessions(ctx context.Context, hub, subject string) (int, error)
}

// SessionUpdater is an optional ability of a Sessions store: replacing a
// record only while it exists (Redis SET … XX). The SP uses it to reset a
// session's idle timer without racing a logout.
type SessionUpdater interface {
	// UpdateSession replaces s.ID with a new TTL if it exists and reports
	// whether it did.
	UpdateSession(ctx context.Context, s StoredSession, ttl time.Duration) (found bool, err error)
}

// ReplayCache records SAML message ids shared by every replica.
type ReplayCache interface {
	// Seen records id (an assertion, response or request ID) of hub until
	// expiry and reports whether this is its first use: true once, false for
	// every later call until expiry. Any error refuses the message.
	Seen(ctx context.Context, hub, id string, expiry time.Time) (first bool, err error)
}

// Identity is what a hub asserted about a user at login.
type Identity struct {
	// Hub is the hub's server id.
	Hub string
	// Subject is the NameID value: for a Connect hub, the user's SCIM id (the
	// Connect unique ID). SubjectFormat is its NameID Format.
	Subject       string
	SubjectFormat string
	// SessionIndex is the hub's session index (used by single logout).
	SessionIndex string

	UserName    string
	Email       string
	GivenName   string
	FamilyName  string
	DisplayName string
	Groups      []string
	// Attributes holds every attribute value by attribute Name (and by
	// FriendlyName when it differs).
	Attributes map[string][]string
}

// LocalUser is the site account a session belongs to. The forward-auth
// headers come from it.
type LocalUser struct {
	// ID is the local account id.
	ID string
	// Username is the local username (X-Connect-User).
	Username    string
	Email       string
	DisplayName string
	// Groups are the local group names (X-Connect-Groups, comma-separated).
	Groups []string
	// Hub is the hub server id of a connect account; "" for a manual one.
	Hub string
}

// Accounts maps hub users to local accounts. The bridge implements it on its
// local directory with the rules of the sync (account mapping, generated
// usernames, scope).
type Accounts interface {
	// Login returns the local account of an asserted hub user, creating it just
	// in time when the user is in scope but not synced yet. It returns an error
	// matching ErrOutOfScope when the user is outside the bridge's scope, and
	// ErrNotAllowed when the account may not log in (suspended, deleted,
	// ambiguous mapping); the user then sees a clear page and no session starts.
	// The account returned is as current as Allowed's answer would be: the
	// SP caches it as the new session's first Allowed answer.
	Login(ctx context.Context, hub string, id Identity) (LocalUser, error)
	// Allowed returns the account as it is now (its groups may have changed),
	// or an error matching ErrNotAllowed (or ErrOutOfScope) when it may no
	// longer use the site. The SP caches the answer for Config.AllowedCache.
	Allowed(ctx context.Context, u LocalUser) (LocalUser, error)
}

// LocalAuth checks the local form's credentials (manual accounts, and connect
// accounts with a synced password hash when the implementation allows it).
type LocalAuth interface {
	// Authenticate returns the account, or an error matching ErrInvalid for any
	// refusal the user should not learn the reason of (unknown user, wrong
	// password, suspended), or ErrNotAllowed. Other errors mean the check could
	// not be made.
	Authenticate(ctx context.Context, username, password string) (LocalUser, error)
}
