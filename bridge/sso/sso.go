package sso

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/saml/sp"
	"github.com/connectsso/connect/scim"
)

// Config is what New wires together. Dir, Records, State and Sync are
// required.
type Config struct {
	// BaseURL is the bridge's public URL (the Client URL of the handshake).
	BaseURL string
	// SiteName titles the login page (default: the URL's host).
	SiteName string
	Dir      local.Directory
	Records  bridge.Records
	State    state.State
	Sync     Syncer
	// HTTPClient fetches hub metadata in the handshake and probes hubs for
	// the local form (nil: defaults with timeouts).
	HTTPClient *http.Client
	// InsecureHTTP accepts plain http hub URLs off loopback in the handshake.
	InsecureHTTP bool
	// TrustedProxies are the reverse proxies (nginx) whose X-Forwarded-For
	// names the client for the local form's per-address throttle.
	TrustedProxies []netip.Prefix
	// SessionIdle and SessionLifetime bound a session (0: saml/sp defaults).
	SessionIdle, SessionLifetime time.Duration
	Logger                       *slog.Logger
	Registerer                   prometheus.Registerer
	Clock                        func() time.Time
	// Tune, when set, adjusts the SP configuration before it is built (tests,
	// benchmarks, operator flags).
	Tune func(*sp.Config)
}

// Bridge is the SSO side of a serving bridge: the SP and the handshake.
type Bridge struct {
	SP        *sp.SP
	Handshake *bridge.Handshake
	Accounts  *Accounts
	Local     *LocalAuth
	mux       *http.ServeMux
}

// New makes (or loads) the SP key pair and builds the SP and the handshake.
func New(ctx context.Context, cfg Config) (*Bridge, error) {
	var errs []error
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("sso: base url %q: want an absolute http(s) URL", cfg.BaseURL))
	}
	for name, v := range map[string]any{"local directory": cfg.Dir, "records": cfg.Records, "state": cfg.State, "sync": cfg.Sync} {
		if v == nil {
			errs = append(errs, fmt.Errorf("sso: %s: not set", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SiteName == "" {
		cfg.SiteName = u.Host
	}
	key, cert, err := EnsureKeyPair(ctx, cfg.Records, u.Hostname(), cfg.Clock())
	if err != nil {
		return nil, err
	}
	keys := &KeySource{Records: cfg.Records, TTL: 10 * time.Second, Clock: cfg.Clock}
	accounts := &Accounts{Dir: cfg.Dir, Sync: cfg.Sync, Clock: cfg.Clock}
	probe := &Probe{Records: cfg.Records, HTTPClient: cfg.HTTPClient, Clock: cfg.Clock}
	la := &LocalAuth{Dir: cfg.Dir, Accounts: accounts, Reachable: probe.Reachable, Attempts: cfg.State}
	sessions := Sessions{State: cfg.State}
	hubs := &Hubs{Records: cfg.Records, Keys: keys, Clock: cfg.Clock}
	spc := sp.Config{
		BaseURL: cfg.BaseURL, SiteName: cfg.SiteName, KeyPEM: key, CertPEM: cert,
		Hubs: hubs, Sessions: sessions, Replay: sessions,
		Accounts: accounts, Local: la,
		AutoSSO: func(ctx context.Context) bool {
			s, err := bridge.LoadSettings(ctx, cfg.Records)
			if err != nil {
				cfg.Logger.Warn("sso: read settings (auto-sso off)", "err", err)
				return false
			}
			return s.AutoSSO
		},
		SessionIdle: cfg.SessionIdle, SessionLifetime: cfg.SessionLifetime,
		ClientIP: ClientIP(cfg.TrustedProxies),
		Logger:   cfg.Logger, Registerer: cfg.Registerer, Clock: cfg.Clock,
	}
	if cfg.Tune != nil {
		cfg.Tune(&spc)
	}
	// The SP counts failed local logins per replica; the state counts them
	// for all replicas with the same limits.
	la.AccountLimit, la.AddressLimit, la.Window = spc.LocalAccountLimit, spc.LocalAddressLimit, spc.LocalWindow
	s, err := sp.New(spc)
	if err != nil {
		return nil, err
	}
	hs := &bridge.Handshake{
		Records: cfg.Records,
		SPMetadata: func(ctx context.Context) (string, []byte, error) {
			md, err := s.Metadata(ctx)
			return s.EntityID(), md, err
		},
		HTTPClient: cfg.HTTPClient, InsecureHTTP: cfg.InsecureHTTP,
		OnChange: hubs.Forget, Clock: cfg.Clock, Logger: cfg.Logger,
	}
	b := &Bridge{SP: s, Handshake: hs, Accounts: accounts, Local: la, mux: http.NewServeMux()}
	b.mux.HandleFunc(scim.RegisterPath, hs.ServeRegister)
	b.mux.HandleFunc(scim.UnregisterPath, hs.ServeUnregister)
	h := s.Handler()
	b.mux.Handle("POST "+sp.PathLogin, withClientAddress(spc.ClientIP, h))
	b.mux.Handle("/", h)
	return b, nil
}

// Handler serves the SP's routes (login, ACS, SLO, logout, /connect/auth,
// metadata) and the handshake's register and unregister endpoints. Mount it
// at the root of the bridge's URL, beside /healthz, /readyz and /metrics.
func (b *Bridge) Handler() http.Handler { return b.mux }

// recordURL is the record where a serving bridge keeps its public URL, so
// that `connect bridge servers connect` prints the right Client URL.
const recordURL = "public-url"

// RecordURL stores the bridge's public URL.
func RecordURL(ctx context.Context, r bridge.Records, u string) error {
	return r.PutRecord(ctx, local.Record{Kind: recordKind, Key: recordURL, Value: []byte(u)})
}

// RecordedURL returns the public URL a serving bridge recorded ("" if none).
func RecordedURL(ctx context.Context, r bridge.Records) (string, error) {
	rec, err := r.GetRecord(ctx, recordKind, recordURL)
	if errors.Is(err, local.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(rec.Value), nil
}
