package idp

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crewjam/saml"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"
)

// Routes, relative to the hub's base URL. They are part of the contract with
// service providers and test drivers (see the package documentation).
const (
	PathMetadata     = "/saml/metadata"
	PathSSO          = "/saml/sso"
	PathSLO          = "/saml/slo"
	PathIdPInitiated = "/saml/idp-initiated"
	PathLogin        = "/login"
	PathLogout       = "/logout"
)

// maxRequestBody bounds POST bodies on every IdP route.
const maxRequestBody = 256 << 10

// IdP is the hub's SAML identity provider and login page.
type IdP struct {
	cfg     Config
	log     *slog.Logger
	base    string
	secure  bool
	keys    *keyRing
	m       *metrics
	hashSem chan struct{}
	// dummyHash is verified for unknown users so that a wrong user name
	// costs the same time as a wrong password.
	dummyHash string

	urls    struct{ metadata, sso, slo, login url.URL }
	spCache sync.Map // entity ID → *cachedSP
	// recorded remembers session participants already stored.
	recorded  sync.Map
	recordedN atomic.Int64
	up        *upstream // nil without an upstream IdP
	cookies   cookieNames
	starts    *startLimiter // nil when StartRate < 0
	// backChannel sends SOAP LogoutRequests (backchannel.go; crewjam's
	// own SOAP attempts use it too).
	backChannel *http.Client
}

// spCacheTTL is how long a registered SP's parsed metadata is used without
// asking the store again: a registration, replacement or removal reaches
// every replica within it.
const spCacheTTL = 2 * time.Second

type cachedSP struct {
	sum     [32]byte
	ed      *saml.EntityDescriptor
	checked time.Time
}

// New validates cfg and returns the IdP. It registers its metrics on
// cfg.Registerer and touches no store until the first request.
func New(cfg Config) (*IdP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	m, err := newMetrics(c.Registerer)
	if err != nil {
		return nil, fmt.Errorf("saml metrics: %w", err)
	}
	base := strings.TrimRight(c.BaseURL, "/")
	u, _ := url.Parse(base)
	p := &IdP{
		cfg:     c,
		log:     c.Logger,
		base:    base,
		secure:  u.Scheme == "https",
		m:       m,
		hashSem: make(chan struct{}, c.MaxConcurrentHashes),
		cookies: newCookieNames(u.Scheme == "https"),
	}
	for _, u := range []struct {
		dst  *url.URL
		path string
	}{{&p.urls.metadata, PathMetadata}, {&p.urls.sso, PathSSO}, {&p.urls.slo, PathSLO}, {&p.urls.login, PathLogin}} {
		parsed, err := url.Parse(base + u.path)
		if err != nil {
			return nil, fmt.Errorf("saml: base url: %w", err)
		}
		*u.dst = *parsed
	}
	p.keys = &keyRing{keys: c.Keys, alg: c.Algorithm, cn: u.Hostname(), ttl: c.KeyRefresh}
	if len(c.StaticKeyPEM) > 0 {
		signer, cert, alg, _ := ParseKeyPair(c.StaticKeyPEM, c.StaticCertPEM)
		p.keys.static = newSigningKey("static", alg, signer, cert, time.Time{})
	}
	p.dummyHash = dummyArgon2Hash
	p.backChannel = p.backChannelClient()
	if c.StartRate > 0 {
		p.starts = newStartLimiter(c.StartRate, c.StartBurst, startTracked)
	}
	if c.Upstream != nil {
		p.up = &upstream{p: p, cfg: *c.Upstream}
	}
	return p, nil
}

// Routes are the paths Handler serves.
func (p *IdP) Routes() []string {
	r := []string{PathMetadata, PathSSO, PathSLO, PathIdPInitiated, PathLogin, PathLogout}
	if p.up != nil {
		r = append(r, PathUpstreamMetadata, PathUpstreamLogin, PathUpstreamACS, PathUpstreamResume)
	}
	return r
}

// EntityID is the IdP's entity ID (its metadata URL).
func (p *IdP) EntityID() string { return p.base + PathMetadata }

// Handler serves the IdP routes (PathMetadata, PathSSO, PathSLO,
// PathIdPInitiated, PathLogin, PathLogout, and with an upstream IdP the
// PathUpstream* routes). Mount it on Routes().
func (p *IdP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathMetadata, p.serveMetadata)
	mux.HandleFunc("GET "+PathSSO, p.serveSSO)
	mux.HandleFunc("POST "+PathSSO, p.serveSSO)
	mux.HandleFunc("GET "+PathSLO, p.serveSLO)
	mux.HandleFunc("POST "+PathSLO, p.serveSLO)
	mux.HandleFunc("GET "+PathIdPInitiated, p.serveIdPInitiated)
	mux.HandleFunc("GET "+PathLogin, p.serveLoginPage)
	mux.HandleFunc("POST "+PathLogin, p.serveLogin)
	mux.HandleFunc("GET "+PathLogout, p.serveLogoutPage)
	mux.HandleFunc("POST "+PathLogout, p.serveLogout)
	if p.up != nil {
		mux.HandleFunc("GET "+PathUpstreamMetadata, p.serveUpstreamMetadata)
		mux.HandleFunc("GET "+PathUpstreamLogin, p.serveUpstreamLogin)
		mux.HandleFunc("POST "+PathUpstreamACS, p.serveUpstreamACS)
		mux.HandleFunc("GET "+PathUpstreamResume, p.serveUpstreamResume)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		}
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		p.dropLegacyCookies(w, r)
		mux.ServeHTTP(w, r)
	})
}

// now is the IdP's clock.
func (p *IdP) now() time.Time { return p.cfg.Clock() }

// provider builds the crewjam IdentityProvider for one request, with the key
// that signs now and the next keys published. validateAt, when not zero, is
// the time the request's own timestamps are checked against (a request
// resumed after the login form); everything the IdP issues is stamped with
// the real clock by the assertion maker and response writer.
func (p *IdP) provider(ctx context.Context, validateAt time.Time) (*saml.IdentityProvider, error) {
	now := p.now()
	active, next, err := p.keys.current(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if validateAt.IsZero() {
		validateAt = now
	}
	extra := make([]*x509.Certificate, 0, len(next))
	for _, k := range next {
		extra = append(extra, k.cert)
	}
	validity := p.cfg.MetadataValidity
	signer := timedSigner{Signer: xmldsigSigner(active.signer), obs: p.m.signing.WithLabelValues(active.alg)}
	return &saml.IdentityProvider{
		Signer:                  signer,
		Certificate:             active.cert,
		ExtraCertificates:       extra,
		SignatureMethod:         active.method(),
		Logger:                  logAdapter{p.log},
		MetadataURL:             p.urls.metadata,
		SSOURL:                  p.urls.sso,
		LogoutURL:               p.urls.slo,
		LoginURL:                p.urls.login,
		ServiceProviderProvider: spProvider{p},
		SessionProvider:         &sessionProvider{p: p},
		AssertionMaker:          assertionMaker{p},
		ResponseWriter:          responseWriter{p: p, signer: xmlSigner{signer: signer, method: active.method(), certB64: active.certB64}},
		ValidDuration:           &validity,
		Clock:                   dsig.NewFakeClock(fixedClock{clockwork.NewRealClock(), validateAt}),
		SignMetadata:            true,
		RejectSHA1Signatures:    true,
		NameIDFormats:           []saml.NameIDFormat{saml.PersistentNameIDFormat},
		LogoutBindings:          []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
		OnError:                 p.onError,
		HTTPClient:              p.backChannel,
	}, nil
}

// fixedClock is a clockwork.Clock whose Now is fixed for one request.
type fixedClock struct {
	clockwork.Clock
	t time.Time
}

func (c fixedClock) Now() time.Time                  { return c.t }
func (c fixedClock) Since(t time.Time) time.Duration { return c.t.Sub(t) }
func (c fixedClock) Until(t time.Time) time.Duration { return t.Sub(c.t) }

// funcClock is a clockwork.Clock whose Now is the IdP's injected clock.
type funcClock struct {
	clockwork.Clock
	now func() time.Time
}

func (c funcClock) Now() time.Time                  { return c.now() }
func (c funcClock) Since(t time.Time) time.Duration { return c.now().Sub(t) }
func (c funcClock) Until(t time.Time) time.Duration { return t.Sub(c.now()) }

// logAdapter sends crewjam's log lines to slog at debug level: the IdP logs
// every refusal itself, with the request id.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Printf(format string, v ...any) {
	a.l.Debug("crewjam: " + fmt.Sprintf(format, v...))
}
func (a logAdapter) Print(v ...any)   { a.l.Debug("crewjam: " + fmt.Sprint(v...)) }
func (a logAdapter) Println(v ...any) { a.l.Debug("crewjam: " + fmt.Sprint(v...)) }
func (a logAdapter) Fatal(v ...any)   { a.l.Error("crewjam: " + fmt.Sprint(v...)) }
func (a logAdapter) Fatalf(format string, v ...any) {
	a.l.Error("crewjam: " + fmt.Sprintf(format, v...))
}
func (a logAdapter) Fatalln(v ...any)               { a.l.Error("crewjam: " + fmt.Sprint(v...)) }
func (a logAdapter) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (a logAdapter) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
func (a logAdapter) Panicln(v ...any)               { panic(fmt.Sprint(v...)) }

func (p *IdP) requestLog(r *http.Request) *slog.Logger {
	return p.log.With("request_id", r.Header.Get(p.cfg.RequestIDHeader))
}

func (p *IdP) serveMetadata(w http.ResponseWriter, r *http.Request) {
	idp, err := p.provider(r.Context(), time.Time{})
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	idp.ServeMetadata(w, r)
}

func (p *IdP) internalError(w http.ResponseWriter, r *http.Request, err error) {
	p.requestLog(r).Error("saml idp", "err", err)
	p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "The hub could not complete the request. Try again later; if it keeps failing, tell the hub's administrator.")
}

// clientIP is the request's source address.
func (p *IdP) clientIP(r *http.Request) string {
	if p.cfg.ClientIP != nil {
		return p.cfg.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// spProvider is crewjam's ServiceProviderProvider over ServiceProviders,
// caching parsed metadata by its digest.
type spProvider struct{ p *IdP }

func (s spProvider) GetServiceProvider(r *http.Request, entityID string) (*saml.EntityDescriptor, error) {
	return s.p.serviceProvider(r.Context(), entityID)
}

func (p *IdP) serviceProvider(ctx context.Context, entityID string) (*saml.EntityDescriptor, error) {
	now := p.now()
	if v, ok := p.spCache.Load(entityID); ok {
		if c := v.(*cachedSP); now.Sub(c.checked) < spCacheTTL && !now.Before(c.checked) {
			return c.ed, nil
		}
	}
	sp, err := p.cfg.ServiceProviders.ServiceProvider(ctx, entityID)
	if errors.Is(err, ErrNotFound) {
		p.spCache.Delete(entityID)
		return nil, fmt.Errorf("service provider %q: %w", entityID, errNotExist)
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(sp.Metadata)
	if v, ok := p.spCache.Load(entityID); ok && v.(*cachedSP).sum == sum {
		p.spCache.Store(entityID, &cachedSP{sum: sum, ed: v.(*cachedSP).ed, checked: now})
		return v.(*cachedSP).ed, nil
	}
	ed, err := ParseSPMetadata(sp.Metadata)
	if err != nil {
		return nil, fmt.Errorf("registered metadata of %q: %w", entityID, err)
	}
	p.spCache.Store(entityID, &cachedSP{sum: sum, ed: ed, checked: now})
	return ed, nil
}
