package sp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"
)

// Routes, relative to the bridge's base URL. They are part of the contract with
// the hub (metadata, ACS, SLO), nginx (forward auth) and the site (login and
// logout links).
const (
	PathMetadata        = "/saml/metadata"
	PathConnectMetadata = "/connect/v1/metadata"
	PathSAMLLogin       = "/saml/login"
	PathACS             = "/saml/acs"
	PathSLO             = "/saml/slo"
	PathLogin           = "/login"
	PathLogout          = "/logout"
	PathAuth            = "/connect/auth"
)

// maxRequestBody bounds POST bodies (a SAML response with a few hundred groups
// fits easily).
const maxRequestBody = 512 << 10

// SP is the bridge's SAML service provider, login page, sessions and forward
// auth. Build it with New and serve Handler.
type SP struct {
	cfg      Config
	log      *slog.Logger
	base     string // scheme://host[:port], no trailing slash
	origin   string
	secure   bool
	entityID string
	acsURL   url.URL
	sloURL   url.URL
	mdURL    url.URL
	key      keyPair
	dclock   *dsig.Clock
	m        *metrics
	cache    *sessionCache
	// Failed local logins, per account and per source address.
	accountFails, addressFails *throttle

	// Cookie names: the __Host- prefix on https pins them to this origin.
	sessionCookie string
	csrfCookie    string
	reqCookie     string // prefix; the pending request's hash follows
	reqCookiePath string

	// deflaters holds *flate.Writer for redirectURL.
	deflaters sync.Pool

	mu     sync.Mutex
	hubs   map[string]*hubSP   // by hub id
	broken map[string][32]byte // hub id → sum of the metadata that failed
}

// hubSP is the crewjam service provider for one hub, rebuilt when the hub's
// metadata or key pair changes.
type hubSP struct {
	hub Hub
	sum [32]byte
	sp  *saml.ServiceProvider
}

// New validates cfg and returns the SP. It registers its metrics on
// cfg.Registerer and touches no store until the first request.
func New(cfg Config) (*SP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	m, err := newMetrics(c.Registerer)
	if err != nil {
		return nil, fmt.Errorf("sp metrics: %w", err)
	}
	u, _ := url.Parse(strings.TrimRight(c.BaseURL, "/"))
	base := u.Scheme + "://" + u.Host
	kp, _ := parseKeyPair(c.KeyPEM, c.CertPEM)
	s := &SP{
		cfg:    c,
		log:    c.Logger,
		base:   base,
		origin: base,
		secure: u.Scheme == "https",
		key:    kp,
		dclock: dsig.NewFakeClock(funcClock{Clock: clockwork.NewRealClock(), now: c.Clock}),
		m:      m,
		hubs:   map[string]*hubSP{},
		broken: map[string][32]byte{},
	}
	s.entityID = base + PathMetadata
	s.mdURL = mustURL(base + PathMetadata)
	s.acsURL = mustURL(base + PathACS)
	s.sloURL = mustURL(base + PathSLO)
	s.cache = newSessionCache(c.SessionCache, c.AllowedCache)
	s.accountFails = newThrottle(c.LocalAccountLimit, c.LocalWindow)
	s.addressFails = newThrottle(c.LocalAddressLimit, c.LocalWindow)
	prefix := ""
	if s.secure {
		prefix = "__Host-"
	}
	s.sessionCookie = prefix + "connect_session"
	s.csrfCookie = prefix + "connect_csrf"
	// On https the request cookie also gets the __Host- prefix (which needs
	// Path=/): a sibling subdomain cannot plant one to complete its own
	// login in a victim's browser.
	s.reqCookie, s.reqCookiePath = prefix+"connect_req_", PathACS
	if s.secure {
		s.reqCookiePath = "/"
	}
	return s, nil
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err) // only called with URLs built from a validated base
	}
	return *u
}

// EntityID is the SP's SAML entity ID (BaseURL + /saml/metadata).
func (s *SP) EntityID() string { return s.entityID }

// Handler serves every route of the package (see the package documentation).
// Mount it at the root of the bridge's origin.
func (s *SP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathMetadata, s.serveMetadata)
	mux.HandleFunc("GET "+PathConnectMetadata, s.serveMetadata)
	mux.HandleFunc("GET "+PathSAMLLogin, s.serveStartLogin)
	mux.HandleFunc("POST "+PathACS, s.serveACS)
	mux.HandleFunc("GET "+PathSLO, s.serveSLO)
	mux.HandleFunc("POST "+PathSLO, s.serveSLO)
	mux.HandleFunc("POST "+PathSLOSOAP, s.serveSOAPLogout)
	mux.HandleFunc("GET "+PathLogin, s.serveLoginPage)
	mux.HandleFunc("POST "+PathLogin, s.serveLocalLogin)
	mux.HandleFunc("GET "+PathLogout, s.serveLogout)
	mux.HandleFunc("POST "+PathLogout, s.serveLogout)
	mux.HandleFunc(PathAuth, s.serveAuth)
	return mux
}

// funcClock is a clockwork.Clock whose Now is Config.Clock, so that crewjam's
// time checks use the injected clock.
type funcClock struct {
	clockwork.Clock
	now func() time.Time
}

func (c funcClock) Now() time.Time                  { return c.now() }
func (c funcClock) Since(t time.Time) time.Duration { return c.now().Sub(t) }
func (c funcClock) Until(t time.Time) time.Duration { return t.Sub(c.now()) }

func (s *SP) now() time.Time { return s.cfg.Clock() }

func (s *SP) requestLog(r *http.Request) *slog.Logger {
	if id := r.Header.Get(s.cfg.RequestIDHeader); id != "" {
		return s.log.With("request_id", id)
	}
	return s.log
}

// connectedHubs returns the service provider of every connected hub whose
// metadata is usable, in the Hubs order. A hub without metadata is left out
// quietly; one with broken metadata is logged (once per change) and left out,
// so one bad hub never breaks the login page.
func (s *SP) connectedHubs(ctx context.Context) ([]*hubSP, error) {
	hubs, err := s.cfg.Hubs.Hubs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list hubs: %w", err)
	}
	out := make([]*hubSP, 0, len(hubs))
	seen := make(map[string]bool, len(hubs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range hubs {
		if h.ID == "" || seen[h.ID] || len(h.Metadata) == 0 {
			// No metadata: a source connected for provisioning only (e.g.
			// `servers add-manual`), not for SSO.
			continue
		}
		seen[h.ID] = true
		c, ok := s.hubs[h.ID]
		var sum [32]byte
		if ok && sameBytes(c.hub.Metadata, h.Metadata) && sameBytes(c.hub.KeyPEM, h.KeyPEM) && sameBytes(c.hub.CertPEM, h.CertPEM) {
			// The very slices the entry was built from (Hubs implementations
			// that cache their list hand them out again): nothing to hash.
			sum = c.sum
		} else {
			sum = hubSum(h)
		}
		if ok && c.sum == sum {
			if c.hub.Name != h.Name {
				// Entries are shared with running requests: replace, never
				// write into one.
				nc := *c
				nc.hub.Name = h.Name
				c = &nc
				s.hubs[h.ID] = c
			}
			out = append(out, c)
			continue
		}
		if s.broken[h.ID] == sum {
			continue
		}
		c, err := s.buildHubSP(h, sum)
		if err != nil {
			s.log.Error("hub unusable for SSO", "hub", h.ID, "err", err)
			delete(s.hubs, h.ID)
			s.broken[h.ID] = sum
			continue
		}
		delete(s.broken, h.ID)
		s.hubs[h.ID] = c
		out = append(out, c)
	}
	for id := range s.hubs {
		if !seen[id] {
			delete(s.hubs, id)
		}
	}
	for id := range s.broken {
		if !seen[id] {
			delete(s.broken, id)
		}
	}
	return out, nil
}

// hubByID returns the service provider of one connected hub, or nil.
func (s *SP) hubByID(ctx context.Context, id string) (*hubSP, error) {
	hubs, err := s.connectedHubs(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range hubs {
		if h.hub.ID == id {
			return h, nil
		}
	}
	return nil, nil
}

// hubByEntityID returns the hub whose IdP entity ID is entityID, or nil.
func (s *SP) hubByEntityID(ctx context.Context, entityID string) (*hubSP, error) {
	hubs, err := s.connectedHubs(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range hubs {
		if h.sp.IDPMetadata.EntityID == entityID {
			return h, nil
		}
	}
	return nil, nil
}

// sameBytes reports whether a and b are the same slice (same array, same
// length), not merely equal bytes.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func hubSum(h Hub) [32]byte {
	d := sha256.New()
	for _, b := range [][]byte{h.Metadata, h.KeyPEM, h.CertPEM} {
		fmt.Fprintf(d, "%d:", len(b))
		d.Write(b)
	}
	var sum [32]byte
	d.Sum(sum[:0])
	return sum
}

func (s *SP) buildHubSP(h Hub, sum [32]byte) (*hubSP, error) {
	md, err := parseIDPMetadata(h.Metadata)
	if err != nil {
		return nil, err
	}
	kp := s.key
	if len(h.KeyPEM) > 0 || len(h.CertPEM) > 0 {
		if kp, err = parseKeyPair(h.KeyPEM, h.CertPEM); err != nil {
			return nil, fmt.Errorf("hub key pair: %w", err)
		}
	}
	sp := &saml.ServiceProvider{
		EntityID:                         s.entityID,
		Key:                              kp.signer,
		Certificate:                      kp.cert,
		MetadataURL:                      s.mdURL,
		AcsURL:                           s.acsURL,
		SloURL:                           s.sloURL,
		IDPMetadata:                      md,
		AuthnNameIDFormat:                saml.PersistentNameIDFormat,
		SignatureMethod:                  s.authnSigMethod(kp),
		LogoutSignatureMethod:            kp.method,
		AllowIDPInitiated:                false,
		RejectSHA1Signatures:             true,
		RequireSignedResponseForCBC:      true,
		LogoutBindings:                   []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		MetadataOmitValidUntil:           true,
		Clock:                            s.dclock,
		// Hubs signing with ECDSA write r || s (ecdsa.go).
		SignatureVerifier: ecdsaVerifier{},
	}
	if sp.GetSSOBindingLocation(saml.HTTPRedirectBinding) == "" && sp.GetSSOBindingLocation(saml.HTTPPostBinding) == "" {
		return nil, errors.New("hub metadata has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding")
	}
	return &hubSP{hub: h, sum: sum, sp: sp}, nil
}

// authnSigMethod is the AuthnRequest signature method: none unless
// Config.SignAuthnRequests.
func (s *SP) authnSigMethod(kp keyPair) string {
	if s.cfg.SignAuthnRequests {
		return kp.method
	}
	return ""
}

// maxMetadataSize bounds a hub's pinned metadata.
const maxMetadataSize = 1 << 20

// parseIDPMetadata reads an IdP EntityDescriptor, or an EntitiesDescriptor
// that holds exactly one IdP.
func parseIDPMetadata(data []byte) (*saml.EntityDescriptor, error) {
	if len(data) == 0 {
		return nil, errors.New("no IdP metadata")
	}
	if len(data) > maxMetadataSize {
		return nil, fmt.Errorf("IdP metadata larger than %d bytes", maxMetadataSize)
	}
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("IdP metadata: %w", err)
	}
	var ed *saml.EntityDescriptor
	switch root.XMLName.Local {
	case "EntityDescriptor":
		ed = new(saml.EntityDescriptor)
		if err := xml.Unmarshal(data, ed); err != nil {
			return nil, fmt.Errorf("IdP metadata: %w", err)
		}
	case "EntitiesDescriptor":
		var all saml.EntitiesDescriptor
		if err := xml.Unmarshal(data, &all); err != nil {
			return nil, fmt.Errorf("IdP metadata: %w", err)
		}
		var idps []saml.EntityDescriptor
		var walk func(e *saml.EntitiesDescriptor)
		walk = func(e *saml.EntitiesDescriptor) {
			for _, d := range e.EntityDescriptors {
				if len(d.IDPSSODescriptors) > 0 {
					idps = append(idps, d)
				}
			}
			for i := range e.EntitiesDescriptors {
				walk(&e.EntitiesDescriptors[i])
			}
		}
		walk(&all)
		if len(idps) != 1 {
			return nil, fmt.Errorf("IdP metadata: an EntitiesDescriptor must hold exactly one IdP (found %d)", len(idps))
		}
		ed = &idps[0]
	default:
		return nil, fmt.Errorf("IdP metadata: root element %s, want EntityDescriptor", root.XMLName.Local)
	}
	if ed.EntityID == "" || len(ed.IDPSSODescriptors) == 0 {
		return nil, errors.New("IdP metadata: no entityID or no IDPSSODescriptor")
	}
	signing := 0
	for _, d := range ed.IDPSSODescriptors {
		for _, k := range d.KeyDescriptors {
			if k.Use == "" || k.Use == "signing" {
				signing += len(k.KeyInfo.X509Data.X509Certificates)
			}
		}
	}
	if signing == 0 {
		return nil, errors.New("IdP metadata: no signing certificate")
	}
	return ed, nil
}

// Metadata returns the SP metadata XML: one entity for the bridge, with every
// SP certificate in use (the default key pair and each hub's own). The
// handshake answers the hub with it.
func (s *SP) Metadata(ctx context.Context) ([]byte, error) {
	hubs, err := s.connectedHubs(ctx)
	if err != nil {
		return nil, err
	}
	base := &saml.ServiceProvider{
		EntityID:                         s.entityID,
		Key:                              s.key.signer,
		Certificate:                      s.key.cert,
		MetadataURL:                      s.mdURL,
		AcsURL:                           s.acsURL,
		SloURL:                           s.sloURL,
		AuthnNameIDFormat:                saml.PersistentNameIDFormat,
		SignatureMethod:                  s.authnSigMethod(s.key),
		LogoutSignatureMethod:            s.key.method,
		LogoutBindings:                   []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		MetadataOmitValidUntil:           true,
		Clock:                            s.dclock,
	}
	ed := base.Metadata()
	s.addSOAPLogout(ed)
	have := map[string]bool{string(s.key.cert.Raw): true}
	for _, h := range hubs {
		if have[string(h.sp.Certificate.Raw)] {
			continue
		}
		have[string(h.sp.Certificate.Raw)] = true
		extra := (&saml.ServiceProvider{
			EntityID: s.entityID, Key: h.sp.Key, Certificate: h.sp.Certificate, LogoutSignatureMethod: h.sp.LogoutSignatureMethod,
			AcsURL: s.acsURL, SloURL: s.sloURL, MetadataOmitValidUntil: true, Clock: s.dclock,
		}).Metadata()
		sd := &ed.SPSSODescriptors[0]
		sd.KeyDescriptors = append(sd.KeyDescriptors, extra.SPSSODescriptors[0].KeyDescriptors...)
	}
	if !s.cfg.EncryptAssertions {
		sd := &ed.SPSSODescriptors[0]
		kds := sd.KeyDescriptors[:0]
		for _, kd := range sd.KeyDescriptors {
			if kd.Use != "encryption" {
				kds = append(kds, kd)
			}
		}
		sd.KeyDescriptors = kds
	}
	out, err := xml.MarshalIndent(ed, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal metadata: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}

func (s *SP) serveMetadata(w http.ResponseWriter, r *http.Request) {
	md, err := s.Metadata(r.Context())
	if err != nil {
		s.requestLog(r).Error("sp metadata", "err", err)
		http.Error(w, "metadata unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = bytes.NewReader(md).WriteTo(w)
}
