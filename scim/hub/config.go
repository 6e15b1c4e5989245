package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/scim/store"
)

// Defaults for the zero fields of Config.
const (
	DefaultListen           = "127.0.0.1:8080"
	DefaultName             = "Connect hub"
	DefaultJournalRetention = 7 * 24 * time.Hour
	DefaultStatsInterval    = 30 * time.Second
	DefaultTrimInterval     = time.Hour
	DefaultShutdownTimeout  = 15 * time.Second
)

// ErrNoStore is the problem Validate reports when Config.Store is nil; callers that
// validate settings before opening the store skip it with errors.Is.
var ErrNoStore = errors.New("store: not set")

// Config is everything a hub server needs. Flags, environment variables and the
// YAML file exist only in cmd/connect; they fill this struct.
type Config struct {
	// Name is the hub's display name (shown to users and bridges).
	Name string
	// Listen is the TCP address to serve on (host:port; port 0 picks a free port).
	Listen string
	// URL is the public base URL of the hub, e.g. https://hub.example.org. The SCIM
	// endpoint is URL + "/scim/v2".
	URL string
	// Store is the hub directory. The caller opens and closes it.
	Store store.Store
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Registry receives the hub's metrics and is served at /metrics; nil makes a
	// fresh one.
	Registry *prometheus.Registry
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// JournalRetention is how long change-journal entries are kept when the hub
	// setting journal-retention is unset. Zero means DefaultJournalRetention.
	JournalRetention time.Duration
	// StatsInterval is how often the directory-size gauges are refreshed.
	StatsInterval time.Duration
	// TrimInterval is how often the journal trimmer runs.
	TrimInterval time.Duration
	// ShutdownTimeout bounds the graceful shutdown of in-flight requests.
	ShutdownTimeout time.Duration
	// InsecureHTTP accepts a plain http:// URL on a host that is not loopback.
	InsecureHTTP bool
	// Version is reported by the connect_hub_build_info metric.
	Version string
	// SAML configures the SAML identity provider and login page (saml.go).
	SAML SAMLConfig
}

// Validate reports every problem of c at once (errors.Join), or nil.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, ErrNoStore)
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: not set"))
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: want host:port", c.Listen))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("listen %q: bad port", c.Listen))
	}
	if err := validateURL(c.URL, c.InsecureHTTP); err != nil {
		errs = append(errs, err)
	}
	if c.JournalRetention < 0 {
		errs = append(errs, fmt.Errorf("journal retention %s: must not be negative", c.JournalRetention))
	} else if c.JournalRetention > 0 && c.JournalRetention < time.Hour {
		errs = append(errs, fmt.Errorf("journal retention %s: must be at least 1h", c.JournalRetention))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"stats interval", c.StatsInterval}, {"trim interval", c.TrimInterval}, {"shutdown timeout", c.ShutdownTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", d.name, d.v))
		}
	}
	if err := c.SAML.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateURL checks the public URL. Plain http is accepted only on a
// loopback host (DESIGN.md §5, §8): passwords are typed into the hub's login
// page and its cookies must be Secure; insecure lifts that for test rigs.
func validateURL(s string, insecure bool) error {
	if s == "" {
		return errors.New("url: not set (the hub's public base URL, e.g. https://hub.example.org)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("url %q: %v", s, err)
	}
	var problems []string
	if u.Scheme != "http" && u.Scheme != "https" {
		problems = append(problems, "scheme must be http or https")
	}
	if u.Host == "" {
		problems = append(problems, "no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		problems = append(problems, "must not have a query or fragment")
	}
	if u.User != nil {
		problems = append(problems, "must not carry credentials")
	}
	if u.Scheme == "http" && u.Host != "" && !insecure && !isLoopback(u.Hostname()) {
		problems = append(problems, "plain http is accepted only on a loopback host (use https behind a TLS proxy, or --insecure-http)")
	}
	if len(problems) > 0 {
		return fmt.Errorf("url %q: %s", s, strings.Join(problems, "; "))
	}
	return nil
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Name == "" {
		d.Name = DefaultName
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.JournalRetention == 0 {
		d.JournalRetention = DefaultJournalRetention
	}
	if d.StatsInterval == 0 {
		d.StatsInterval = DefaultStatsInterval
	}
	if d.TrimInterval == 0 {
		d.TrimInterval = DefaultTrimInterval
	}
	if d.ShutdownTimeout == 0 {
		d.ShutdownTimeout = DefaultShutdownTimeout
	}
	return d
}
