package sp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero fields of Config.
const (
	// DefaultSessionIdle ends a session unused for this long.
	DefaultSessionIdle = 2 * time.Hour
	// DefaultSessionLifetime ends every session this long after login.
	DefaultSessionLifetime = 12 * time.Hour
	// DefaultRequestLifetime is how long a login or logout started at a hub
	// may take before its answer is refused.
	DefaultRequestLifetime = 10 * time.Minute
	// DefaultClockSkew is the tolerated difference between the hub's clock
	// and ours when checking assertion times.
	DefaultClockSkew = 90 * time.Second
	// DefaultSessionCache is how long /connect/auth trusts a session read
	// from the store without reading it again (a logout on another replica
	// takes effect here within it).
	DefaultSessionCache = 2 * time.Second
	// DefaultAllowedCache is how long an Accounts.Allowed answer is reused.
	DefaultAllowedCache = 5 * time.Second
	// DefaultLocalAccountLimit failed local logins of one account within
	// DefaultLocalWindow block that account's local logins until the window
	// ends; DefaultLocalAddressLimit does the same per source address.
	DefaultLocalAccountLimit = 10
	DefaultLocalAddressLimit = 100
	DefaultLocalWindow       = 15 * time.Minute
)

// Config is everything the SP needs; `connect bridge serve` fills it.
type Config struct {
	// BaseURL is the bridge's public URL, the origin of the site it protects
	// (http only on loopback; https makes cookies Secure). The SP entity ID is
	// BaseURL + "/saml/metadata".
	BaseURL string
	// InsecureHTTP allows an http BaseURL on a host that is not loopback
	// (cookies then travel in the clear); without it http is for loopback only.
	InsecureHTTP bool
	// SiteName titles the login page ("Log in to SiteName").
	SiteName string
	// KeyPEM and CertPEM are the SP's key pair (PKCS#8, PKCS#1 or SEC1 key;
	// X.509 certificate), used with every hub that has none of its own. See
	// NewKeyPair.
	KeyPEM, CertPEM []byte

	// SignAuthnRequests signs AuthnRequests (metadata AuthnRequestsSigned).
	// Off by default: a hub answers only to the ACS registered in its copy of
	// our metadata, so a forged request gains nothing, and signing costs an
	// RSA operation per login. Logout messages are always signed (the single
	// logout profile requires it).
	SignAuthnRequests bool
	// EncryptAssertions publishes the SP's RSA key for encryption, so hubs
	// encrypt assertions to it. Off by default: assertions travel over TLS to
	// the user's own browser, and decrypting costs an RSA operation and a
	// second XML parse per login. Encrypted assertions are accepted either way.
	EncryptAssertions bool

	Hubs     Hubs
	Sessions Sessions
	Replay   ReplayCache
	Accounts Accounts
	// Local checks the local login form; nil hides the form.
	Local LocalAuth
	// AutoSSO reports the bridge setting "auto-sso": when it is on and exactly
	// one hub is connected, /login goes straight to that hub (/login?local=1
	// still shows the page). nil means off.
	AutoSSO func(ctx context.Context) bool

	// SessionIdle and SessionLifetime bound a session (DefaultSessionIdle,
	// DefaultSessionLifetime).
	SessionIdle, SessionLifetime time.Duration
	// RequestLifetime bounds a login or logout round trip to a hub
	// (DefaultRequestLifetime).
	RequestLifetime time.Duration
	// ClockSkew is the tolerated clock difference with hubs (DefaultClockSkew).
	ClockSkew time.Duration
	// SessionCache and AllowedCache are the in-process cache lifetimes of the
	// forward-auth path (DefaultSessionCache, DefaultAllowedCache). Negative
	// disables a cache.
	SessionCache, AllowedCache time.Duration

	// LocalAccountLimit and LocalAddressLimit failed local logins within
	// LocalWindow block further local logins of that account (or from that
	// address) until the window ends (defaults above; negative: no limit).
	// Counted in each replica.
	LocalAccountLimit, LocalAddressLimit int
	LocalWindow                          time.Duration
	// ClientIP returns a request's source address for LocalAddressLimit; nil
	// uses the host of RemoteAddr. Behind nginx, return the address nginx
	// puts in X-Forwarded-For (the last hop nginx added).
	ClientIP func(*http.Request) string

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the SP metrics; nil skips registration.
	Registerer prometheus.Registerer
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// RequestIDHeader names the header carrying the request id for logs
	// (default X-Request-Id).
	RequestIDHeader string
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("sp: base url %q: want an http(s) URL without query", c.BaseURL))
	} else if p := strings.TrimRight(u.Path, "/"); p != "" {
		errs = append(errs, fmt.Errorf("sp: base url %q: the bridge must be served at the root of its origin (the site's cookies and return paths share it)", c.BaseURL))
	} else if u.Scheme == "http" && !c.InsecureHTTP && !loopback(u.Hostname()) {
		errs = append(errs, fmt.Errorf("sp: base url %q: plain http only on loopback (or with --insecure-http)", c.BaseURL))
	}
	if _, err := parseKeyPair(c.KeyPEM, c.CertPEM); err != nil {
		errs = append(errs, fmt.Errorf("sp: key pair: %w", err))
	}
	for name, v := range map[string]any{"hubs": c.Hubs, "sessions": c.Sessions, "replay cache": c.Replay, "accounts": c.Accounts} {
		if v == nil {
			errs = append(errs, fmt.Errorf("sp: %s: not set", name))
		}
	}
	for name, d := range map[string]time.Duration{
		"session idle": c.SessionIdle, "session lifetime": c.SessionLifetime, "request lifetime": c.RequestLifetime,
		"clock skew": c.ClockSkew, "local window": c.LocalWindow,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("sp: %s %s: must not be negative", name, d))
		}
	}
	if c.ClockSkew > 5*time.Minute {
		errs = append(errs, fmt.Errorf("sp: clock skew %s: at most 5m", c.ClockSkew))
	}
	if c.SessionIdle > 0 && c.SessionLifetime > 0 && c.SessionIdle > c.SessionLifetime {
		errs = append(errs, fmt.Errorf("sp: session idle %s longer than session lifetime %s", c.SessionIdle, c.SessionLifetime))
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
	def(&d.SessionIdle, DefaultSessionIdle)
	def(&d.SessionLifetime, DefaultSessionLifetime)
	if d.SessionIdle > d.SessionLifetime {
		d.SessionIdle = d.SessionLifetime
	}
	def(&d.RequestLifetime, DefaultRequestLifetime)
	def(&d.ClockSkew, DefaultClockSkew)
	def(&d.SessionCache, DefaultSessionCache)
	def(&d.AllowedCache, DefaultAllowedCache)
	def(&d.LocalWindow, DefaultLocalWindow)
	if d.LocalAccountLimit == 0 {
		d.LocalAccountLimit = DefaultLocalAccountLimit
	}
	if d.LocalAddressLimit == 0 {
		d.LocalAddressLimit = DefaultLocalAddressLimit
	}
	if d.ClientIP == nil {
		d.ClientIP = clientIP
	}
	if d.SiteName == "" {
		d.SiteName = "this site"
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
	if d.AutoSSO == nil {
		d.AutoSSO = func(context.Context) bool { return false }
	}
	return d
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
