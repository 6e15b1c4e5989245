package idp

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero fields of Config.
const (
	DefaultSessionLifetime   = 8 * time.Hour
	DefaultAssertionValidity = 5 * time.Minute
	DefaultMetadataValidity  = 24 * time.Hour
	DefaultAccountLimit      = 5
	DefaultAccountWindow     = 15 * time.Minute
	DefaultAccountLockout    = 15 * time.Minute
	DefaultAddressLimit      = 50
	DefaultAddressWindow     = 15 * time.Minute
	DefaultAddressLockout    = 15 * time.Minute
	// DefaultLoginWindow is how old a SAML request may be when the user
	// finishes the login form it caused.
	DefaultLoginWindow = 30 * time.Minute
	// DefaultHashWait bounds how long a login waits for a hashing slot.
	DefaultHashWait = 10 * time.Second
	// DefaultKeyRefresh is how often the signing keys are re-read from the
	// store (a rotation made by another process shows up within it).
	DefaultKeyRefresh = 30 * time.Second
)

// Config is everything the IdP needs. The hub fills it (scim/hub adapts its
// store to the interfaces).
type Config struct {
	// BaseURL is the hub's public URL (http or https, no trailing slash
	// needed). The entity ID is BaseURL + "/saml/metadata". An https URL
	// makes the cookies Secure.
	BaseURL string
	// Name is the hub's display name (login page title).
	Name string

	Users            Users
	Sessions         Sessions
	ServiceProviders ServiceProviders
	Throttles        Throttles
	// Upstream, when set, offers "Log in with <enterprise IdP>" on the login
	// page: the hub is a SAML SP of that IdP.
	Upstream *UpstreamConfig
	// Scopes, when set, limits which users each SP may receive; nil lets
	// every registered SP receive every user.
	Scopes Scopes
	// Keys holds the signing keys; unused when StaticKeyPEM is set.
	Keys Keys
	// StaticKeyPEM and StaticCertPEM, when set, are the only signing key
	// (read from --saml-key/--saml-cert); rotation is then the operator's.
	StaticKeyPEM, StaticCertPEM []byte
	// Algorithm of generated keys: AlgRSA (default) or AlgECDSA.
	Algorithm string

	// SessionLifetime of a hub login session (DefaultSessionLifetime).
	SessionLifetime time.Duration
	// AssertionValidity is the window of Conditions and SubjectConfirmation
	// (DefaultAssertionValidity).
	AssertionValidity time.Duration
	// MetadataValidity is the validUntil/cacheDuration of the metadata.
	MetadataValidity time.Duration
	// LoginWindow bounds the age of the SAML request a login form resumes.
	LoginWindow time.Duration

	// AccountLimit failures within AccountWindow lock the account for
	// AccountLockout (until `connect hub users unlock`).
	AccountLimit   int
	AccountWindow  time.Duration
	AccountLockout time.Duration
	// AddressLimit failures from one source address within AddressWindow
	// block that address for AddressLockout.
	AddressLimit   int
	AddressWindow  time.Duration
	AddressLockout time.Duration

	// MaxConcurrentHashes bounds password hashing at once (each argon2id
	// hash holds 19 MiB); 0 means GOMAXPROCS+1.
	MaxConcurrentHashes int
	// HashWait bounds the wait for a hashing slot (DefaultHashWait); a login
	// that waits longer is told to try again.
	HashWait time.Duration

	// StartRate and StartBurst throttle anonymous login starts (an
	// AuthnRequest or IdP-initiated link without a valid session, a login
	// at the upstream IdP) per source address: a bucket of StartBurst
	// tokens refilled at StartRate a second; an empty bucket answers 429.
	// Zero means DefaultStartRate, and a zero burst 3 seconds' worth;
	// a negative rate turns the throttle off.
	StartRate  float64
	StartBurst int

	// BackChannelClient sends SOAP LogoutRequests to service providers
	// (back-channel single logout); nil means a plain client. Redirects are
	// never followed and BackChannelTimeout replaces its Timeout.
	BackChannelClient *http.Client
	// BackChannelTimeout bounds each back-channel LogoutRequest
	// (DefaultBackChannelTimeout). They are sent concurrently, so a logout
	// waits at most about this long however many SPs are down.
	BackChannelTimeout time.Duration
	// InsecureBackChannel allows SOAP logout endpoints on plain http on a
	// host that is not loopback (the hub's --insecure-http).
	InsecureBackChannel bool

	// ClientIP returns the source address of a request; nil uses the host
	// of RemoteAddr. Set it when the hub runs behind a trusted proxy.
	ClientIP func(*http.Request) string
	// KeyRefresh is how often keys are re-read (DefaultKeyRefresh).
	KeyRefresh time.Duration

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the IdP metrics; nil skips registration.
	Registerer prometheus.Registerer
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// RequestIDHeader names the header carrying the request id for logs.
	RequestIDHeader string
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("saml: base url %q: want an http(s) URL", c.BaseURL))
	}
	for name, v := range map[string]any{"users": c.Users, "sessions": c.Sessions, "service providers": c.ServiceProviders, "throttles": c.Throttles} {
		if v == nil {
			errs = append(errs, fmt.Errorf("saml: %s: not set", name))
		}
	}
	if len(c.StaticKeyPEM) > 0 || len(c.StaticCertPEM) > 0 {
		if _, _, _, err := ParseKeyPair(c.StaticKeyPEM, c.StaticCertPEM); err != nil {
			errs = append(errs, fmt.Errorf("saml: static key: %w", err))
		}
	} else if c.Keys == nil {
		errs = append(errs, errors.New("saml: keys: not set (and no static key)"))
	}
	if _, err := NormalizeAlgorithm(c.Algorithm); err != nil {
		errs = append(errs, fmt.Errorf("saml: %w", err))
	}
	for name, d := range map[string]time.Duration{
		"session lifetime": c.SessionLifetime, "assertion validity": c.AssertionValidity, "metadata validity": c.MetadataValidity,
		"login window": c.LoginWindow, "account window": c.AccountWindow, "account lockout": c.AccountLockout,
		"address window": c.AddressWindow, "address lockout": c.AddressLockout, "hash wait": c.HashWait, "key refresh": c.KeyRefresh,
		"back-channel timeout": c.BackChannelTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("saml: %s %s: must not be negative", name, d))
		}
	}
	if u := c.Upstream; u != nil {
		if u.Name == "" || u.Metadata == "" || u.Users == nil || u.Key == nil {
			errs = append(errs, errors.New("saml: upstream IdP: name, metadata, users and key are required"))
		}
	}
	if math.IsNaN(c.StartRate) || math.IsInf(c.StartRate, 0) {
		errs = append(errs, errors.New("saml: start rate must be a number"))
	}
	if c.AccountLimit < 0 || c.AddressLimit < 0 || c.MaxConcurrentHashes < 0 || c.StartBurst < 0 {
		errs = append(errs, errors.New("saml: limits must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	d := c
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&d.SessionLifetime, DefaultSessionLifetime)
	def(&d.AssertionValidity, DefaultAssertionValidity)
	def(&d.MetadataValidity, DefaultMetadataValidity)
	def(&d.LoginWindow, DefaultLoginWindow)
	def(&d.AccountWindow, DefaultAccountWindow)
	def(&d.AccountLockout, DefaultAccountLockout)
	def(&d.AddressWindow, DefaultAddressWindow)
	def(&d.AddressLockout, DefaultAddressLockout)
	def(&d.HashWait, DefaultHashWait)
	def(&d.KeyRefresh, DefaultKeyRefresh)
	def(&d.BackChannelTimeout, DefaultBackChannelTimeout)
	if d.AccountLimit == 0 {
		d.AccountLimit = DefaultAccountLimit
	}
	if d.AddressLimit == 0 {
		d.AddressLimit = DefaultAddressLimit
	}
	if d.StartRate == 0 {
		d.StartRate = DefaultStartRate
	}
	if d.StartBurst == 0 && d.StartRate > 0 {
		d.StartBurst = max(1, int(math.Ceil(3*d.StartRate)))
	}
	if d.MaxConcurrentHashes == 0 {
		d.MaxConcurrentHashes = runtime.GOMAXPROCS(0) + 1
	}
	if d.Name == "" {
		d.Name = "Connect hub"
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.RequestIDHeader == "" {
		d.RequestIDHeader = "X-Request-Id"
	}
	d.Algorithm, _ = NormalizeAlgorithm(d.Algorithm)
	return d
}
