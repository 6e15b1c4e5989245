package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultPrefix           = "/scim/v2"
	DefaultMaxBodyBytes     = 1 << 20
	DefaultMaxPageSize      = 1000
	DefaultPageSize         = 100
	DefaultChangesRetention = 7 * 24 * time.Hour
	// DefaultTokenCacheTTL is how long an authenticated token is remembered,
	// and so how long a revoked token may still be accepted.
	DefaultTokenCacheTTL = 3 * time.Second
	// MaxWait is the longest long-poll a Changes request may ask for.
	MaxWait = 30 * time.Second
)

// SettingSyncPasswordHashes is the hub setting that lets admin tokens read
// connect passwordHash when they ask for it.
const SettingSyncPasswordHashes = "sync-password-hashes"

// Config configures the SCIM handler. Store and BaseURL are required; zero
// values of the other fields take the defaults above.
type Config struct {
	// Store is the hub directory.
	Store store.Store
	// Draining, when closed, ends every waiting Changes long-poll at once
	// with the page it has (no entries, the same cursor), so a graceful
	// shutdown does not wait for them. nil: never.
	Draining <-chan struct{}
	// BaseURL is the hub's public URL (scheme and host, optional path); resource
	// locations are BaseURL + Prefix + "/Users/" + id.
	BaseURL string
	// Prefix is the path the handler serves under (default "/scim/v2").
	Prefix string
	// Logger receives one line per failed request (never a token or secret).
	// Nil discards.
	Logger *slog.Logger
	// Registerer receives the request metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
	// HashPassword hashes a clear `password` on create, replace and patch into
	// the connect passwordHash. Nil makes the handler refuse passwords (400).
	HashPassword func(string) (string, error)
	// MaxBodyBytes bounds request bodies (default 1 MiB); larger bodies get 413.
	MaxBodyBytes int64
	// MaxPageSize clamps `count` (default 1000).
	MaxPageSize int
	// DefaultPageSize is the page size when a request gives no count (default
	// 100, at most MaxPageSize).
	DefaultPageSize int
	// FilterLimits bound filter length, depth and terms (zero: filter defaults).
	FilterLimits filter.Limits
	// ChangesRetention is how long the hub keeps its change journal (default 7
	// days); advertised as the cursor timeout. Trimming is the hub's job.
	ChangesRetention time.Duration
	// TokenCacheTTL is how long an authenticated token is remembered in
	// process (keyed by the SHA-256 of its secret) before the store is asked
	// again (default DefaultTokenCacheTTL; negative: never cached). A revoked
	// token is refused at the latest TokenCacheTTL after its revocation.
	TokenCacheTTL time.Duration
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("scim server: Store is required"))
	}
	if c.BaseURL == "" {
		errs = append(errs, errors.New("scim server: BaseURL is required"))
	} else if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("scim server: BaseURL %q is not an absolute http(s) URL", c.BaseURL))
	} else if u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("scim server: BaseURL %q must not have a query or fragment", c.BaseURL))
	}
	if c.Prefix != "" && (!strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/")) {
		errs = append(errs, fmt.Errorf("scim server: Prefix %q must start and not end with /", c.Prefix))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("scim server: MaxBodyBytes must not be negative"))
	}
	if c.MaxPageSize < 0 {
		errs = append(errs, errors.New("scim server: MaxPageSize must not be negative"))
	}
	if c.DefaultPageSize < 0 {
		errs = append(errs, errors.New("scim server: DefaultPageSize must not be negative"))
	}
	if c.MaxPageSize > 0 && c.DefaultPageSize > c.MaxPageSize {
		errs = append(errs, fmt.Errorf("scim server: DefaultPageSize %d exceeds MaxPageSize %d", c.DefaultPageSize, c.MaxPageSize))
	}
	if c.FilterLimits.MaxLength < 0 || c.FilterLimits.MaxDepth < 0 || c.FilterLimits.MaxTerms < 0 {
		errs = append(errs, errors.New("scim server: FilterLimits must not be negative"))
	}
	if c.ChangesRetention < 0 {
		errs = append(errs, errors.New("scim server: ChangesRetention must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = DefaultMaxPageSize
	}
	if c.DefaultPageSize == 0 {
		c.DefaultPageSize = min(DefaultPageSize, c.MaxPageSize)
	}
	if c.ChangesRetention == 0 {
		c.ChangesRetention = DefaultChangesRetention
	}
	if c.TokenCacheTTL == 0 {
		c.TokenCacheTTL = DefaultTokenCacheTTL
	}
}
