package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// SAMLConfig configures the hub's SAML identity provider (saml/idp). The zero
// value serves the IdP with keys generated into the store and the default
// login limits.
type SAMLConfig struct {
	// Disabled turns the IdP and the login page off.
	Disabled bool
	// KeyPEM and CertPEM, when set, are the only signing key (from
	// --saml-key/--saml-cert); otherwise keys live in the store.
	KeyPEM, CertPEM []byte
	// Algorithm of keys generated at first start: "rsa" (default) or "ecdsa".
	Algorithm string
	// SessionLifetime of a hub login session (idp.DefaultSessionLifetime).
	SessionLifetime time.Duration
	// AccountLimit failed logins within AccountWindow lock an account for
	// AccountLockout; zero means the idp defaults (5, 15m, 15m).
	AccountLimit   int
	AccountWindow  time.Duration
	AccountLockout time.Duration
	// AddressLimit failed logins from one address within AddressWindow block
	// it for AddressLockout (defaults 50, 15m, 15m).
	AddressLimit   int
	AddressWindow  time.Duration
	AddressLockout time.Duration
	// MaxConcurrentHashes bounds password hashing at once (0: GOMAXPROCS+1).
	MaxConcurrentHashes int
	// StartRate and StartBurst throttle anonymous login starts per source
	// address (idp.Config.StartRate: defaults 20/s, burst 60; a negative
	// rate turns it off).
	StartRate  float64
	StartBurst int
	// Upstream is the optional enterprise IdP (saml_upstream.go).
	Upstream UpstreamConfig
	// TrustedProxies are the reverse proxies whose X-Forwarded-For the
	// login throttle believes; without them every login behind a proxy
	// would count against the proxy's address.
	TrustedProxies []netip.Prefix
	// BackChannelClient sends back-channel (SOAP) LogoutRequests to bridges
	// when a hub session ends; nil means a plain client (redirects are never
	// followed). Tests use it to reach bridges on loopback.
	BackChannelClient *http.Client
	// BackChannelTimeout bounds each of them (idp.DefaultBackChannelTimeout,
	// 3 s); they run concurrently.
	BackChannelTimeout time.Duration
	// GC is the garbage-collector tuning `hub serve` applies to its process
	// with TuneGC (saml_gc.go: chosen for signed-response throughput under
	// a bounded memory); New does not apply it, the process is the caller's.
	GC GCSettings
}

// clientIP returns the request's source address: RemoteAddr, or, when that
// is a trusted proxy, the right-most X-Forwarded-For entry that is not one.
func (c SAMLConfig) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	trusted := func(s string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		for _, p := range c.TrustedProxies {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if len(c.TrustedProxies) == 0 || !trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		if _, err := netip.ParseAddr(h); err != nil {
			return host // garbage: fall back to the proxy itself
		}
		if !trusted(h) {
			return h
		}
	}
	return host
}

func (c SAMLConfig) validate() error {
	if c.Disabled {
		return nil
	}
	var errs []error
	if (len(c.KeyPEM) > 0) != (len(c.CertPEM) > 0) {
		errs = append(errs, errors.New("saml: key and certificate must be given together"))
	} else if len(c.KeyPEM) > 0 {
		if _, _, _, err := idp.ParseKeyPair(c.KeyPEM, c.CertPEM); err != nil {
			errs = append(errs, fmt.Errorf("saml key: %w", err))
		}
	}
	if _, err := idp.NormalizeAlgorithm(c.Algorithm); err != nil {
		errs = append(errs, fmt.Errorf("saml: %w", err))
	}
	for _, d := range []time.Duration{c.SessionLifetime, c.AccountWindow, c.AccountLockout, c.AddressWindow, c.AddressLockout, c.BackChannelTimeout} {
		if d < 0 {
			errs = append(errs, errors.New("saml: durations must not be negative"))
			break
		}
	}
	if c.AccountLimit < 0 || c.AddressLimit < 0 || c.MaxConcurrentHashes < 0 || c.StartBurst < 0 {
		errs = append(errs, errors.New("saml: limits must not be negative"))
	}
	if err := c.Upstream.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.GC.validate(); err != nil {
		errs = append(errs, fmt.Errorf("gc: %w", err))
	}
	return errors.Join(errs...)
}

// mountSAML builds the IdP over the store and mounts its routes. A store
// without the IdP ability (store.IdP) leaves them unmounted.
func (s *Server) mountSAML(mux *http.ServeMux, c Config) error {
	if c.SAML.Disabled {
		return nil
	}
	ist, ok := c.Store.(store.IdP)
	if !ok {
		c.Logger.Warn("store has no SAML IdP state; /saml and /login are not served")
		return nil
	}
	a := samlStore{st: c.Store, idp: ist}
	var up *idp.UpstreamConfig
	if c.SAML.Upstream.Metadata != "" {
		uu := &upstreamUsers{a: a, cfg: c.SAML.Upstream, actor: "saml-upstream", hubURL: c.URL, clock: c.Clock}
		up = &idp.UpstreamConfig{Name: c.SAML.Upstream.Name, Metadata: c.SAML.Upstream.Metadata, Users: uu, Key: uu.key}
	}
	p, err := idp.New(idp.Config{
		Upstream:            up,
		BaseURL:             c.URL,
		Name:                c.Name,
		Users:               a,
		Sessions:            a,
		ServiceProviders:    a,
		Throttles:           a,
		Scopes:              a,
		Keys:                a,
		StaticKeyPEM:        c.SAML.KeyPEM,
		StaticCertPEM:       c.SAML.CertPEM,
		Algorithm:           c.SAML.Algorithm,
		SessionLifetime:     c.SAML.SessionLifetime,
		AccountLimit:        c.SAML.AccountLimit,
		AccountWindow:       c.SAML.AccountWindow,
		AccountLockout:      c.SAML.AccountLockout,
		AddressLimit:        c.SAML.AddressLimit,
		AddressWindow:       c.SAML.AddressWindow,
		AddressLockout:      c.SAML.AddressLockout,
		MaxConcurrentHashes: c.SAML.MaxConcurrentHashes,
		StartRate:           c.SAML.StartRate,
		StartBurst:          c.SAML.StartBurst,
		ClientIP:            c.SAML.clientIP,
		BackChannelClient:   c.SAML.BackChannelClient,
		BackChannelTimeout:  c.SAML.BackChannelTimeout,
		InsecureBackChannel: c.InsecureHTTP,
		Logger:              c.Logger.With("component", "saml"),
		Registerer:          c.Registry,
		Clock:               c.Clock,
		RequestIDHeader:     RequestIDHeader,
	})
	if err != nil {
		return fmt.Errorf("hub saml idp: %w", err)
	}
	h := p.Handler()
	for _, path := range p.Routes() {
		mux.Handle(path, h)
	}
	s.samlStore = ist
	return nil
}

// cleanSessions deletes expired IdP sessions and stale login throttles (a
// background task).
func (s *Server) cleanSessions(ctx context.Context) {
	if s.samlStore == nil {
		return
	}
	n, err := s.samlStore.DeleteExpiredIdPSessions(ctx, s.cfg.Clock())
	if err != nil {
		if ctx.Err() == nil {
			s.bgErrs.WithLabelValues("sessions").Inc()
			s.log.Warn("delete expired idp sessions", "err", err)
		}
		return
	}
	if n > 0 {
		s.log.Info("deleted expired idp sessions", "deleted", n)
	}
	// Failed-login counters outlive every window and lockout after a day.
	if _, err := s.samlStore.DeleteStaleLoginThrottles(ctx, s.cfg.Clock().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
		s.bgErrs.WithLabelValues("sessions").Inc()
		s.log.Warn("delete stale login throttles", "err", err)
	}
}

// samlStore adapts the hub store to the interfaces saml/idp declares.
type samlStore struct {
	st  store.Store
	idp store.IdP
}

var (
	_ idp.Users            = samlStore{}
	_ idp.Sessions         = samlStore{}
	_ idp.ServiceProviders = samlStore{}
	_ idp.Keys             = samlStore{}
	_ idp.Throttles        = samlStore{}
	_ idp.Scopes           = samlStore{}
)

// idpErr maps store sentinels to the idp ones, keeping the chain.
func idpErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", idp.ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", idp.ErrConflict, err)
	}
	return err
}

func (a samlStore) user(ctx context.Context, u scim.User) (idp.User, error) {
	out := idp.User{
		ID:          u.ID,
		UserName:    u.UserName,
		Email:       u.PrimaryEmail(),
		DisplayName: u.DisplayName,
		Active:      u.IsActive(),
	}
	if u.Name != nil {
		out.GivenName, out.FamilyName = u.Name.GivenName, u.Name.FamilyName
	}
	if out.DisplayName == "" && u.Name != nil {
		out.DisplayName = u.Name.Formatted
	}
	if u.Connect != nil {
		out.PasswordHash = u.Connect.PasswordHash
	}
	groups, err := a.idp.UserGroupNames(ctx, u.ID, scim.KindAudience)
	if err != nil {
		return idp.User{}, err
	}
	out.Groups = groups
	return out, nil
}

func (a samlStore) UserByUserName(ctx context.Context, userName string) (idp.User, error) {
	u, err := a.st.UserByUserName(ctx, userName)
	if err != nil {
		return idp.User{}, idpErr(err)
	}
	return a.user(ctx, u)
}

func (a samlStore) UserByID(ctx context.Context, id string) (idp.User, error) {
	u, err := a.st.GetUser(ctx, id)
	if err != nil {
		return idp.User{}, idpErr(err)
	}
	return a.user(ctx, u)
}

func (a samlStore) SetPasswordHash(ctx context.Context, id, hash string) error {
	_, err := a.st.UpdateUser(ctx, id, 0, func(u *scim.User) error {
		if u.Connect == nil {
			u.Connect = &scim.ConnectUser{}
		}
		u.Connect.PasswordHash = hash
		u.Password = ""
		u.SetSchemas()
		return nil
	})
	return idpErr(err)
}

func (a samlStore) CreateSession(ctx context.Context, s idp.Session) error {
	return idpErr(a.idp.CreateIdPSession(ctx, store.IdPSession{Hash: s.Hash, Index: s.Index, UserID: s.UserID, Created: s.Created, Expires: s.Expires}))
}

func fromStoreSession(s store.IdPSession) idp.Session {
	return idp.Session{Hash: s.Hash, Index: s.Index, UserID: s.UserID, Created: s.Created, Expires: s.Expires}
}

func (a samlStore) Session(ctx context.Context, hash []byte) (idp.Session, error) {
	s, err := a.idp.IdPSession(ctx, hash)
	if err != nil {
		return idp.Session{}, idpErr(err)
	}
	return fromStoreSession(s), nil
}

func (a samlStore) SessionsOfUser(ctx context.Context, userID string) ([]idp.Session, error) {
	ss, err := a.idp.IdPSessionsOfUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]idp.Session, len(ss))
	for i, s := range ss {
		out[i] = fromStoreSession(s)
	}
	return out, nil
}

func (a samlStore) DeleteSession(ctx context.Context, hash []byte) error {
	return a.idp.DeleteIdPSession(ctx, hash)
}

func (a samlStore) AddParticipant(ctx context.Context, hash []byte, p idp.Participant) error {
	return idpErr(a.idp.AddIdPSessionParticipant(ctx, hash, store.IdPParticipant(p)))
}

func (a samlStore) Participants(ctx context.Context, hash []byte) ([]idp.Participant, error) {
	ps, err := a.idp.IdPSessionParticipants(ctx, hash)
	if err != nil {
		return nil, err
	}
	out := make([]idp.Participant, len(ps))
	for i, p := range ps {
		out[i] = idp.Participant(p)
	}
	return out, nil
}

func (a samlStore) ServiceProvider(ctx context.Context, entityID string) (idp.ServiceProvider, error) {
	sp, err := a.idp.ServiceProvider(ctx, entityID)
	if err != nil {
		return idp.ServiceProvider{}, idpErr(err)
	}
	return idp.ServiceProvider{EntityID: sp.EntityID, Metadata: sp.Metadata}, nil
}

func (a samlStore) SigningKeys(ctx context.Context) ([]idp.Key, error) {
	ks, err := a.idp.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]idp.Key, len(ks))
	for i, k := range ks {
		out[i] = idp.Key(k)
	}
	return out, nil
}

func (a samlStore) AddSigningKey(ctx context.Context, k idp.Key) error {
	return idpErr(a.idp.AddSigningKey(ctx, store.SigningKey(k)))
}

func (a samlStore) LoginThrottle(ctx context.Context, key string) (idp.Throttle, error) {
	t, err := a.idp.LoginThrottle(ctx, key)
	return idp.Throttle{Failures: t.Failures, LockedUntil: t.LockedUntil}, err
}

func (a samlStore) RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration, limit int, lockout time.Duration) (idp.Throttle, error) {
	t, err := a.idp.RecordLoginFailure(ctx, key, now, window, limit, lockout)
	return idp.Throttle{Failures: t.Failures, LockedUntil: t.LockedUntil}, err
}

func (a samlStore) ClearLoginThrottle(ctx context.Context, key string) error {
	return a.idp.ClearLoginThrottle(ctx, key)
}

// MayAssert implements idp.Scopes: an SP that is a client system's (the
// client's EntityID) receives only the users in that client's scope; an SP
// registered by hand receives every user.
func (a samlStore) MayAssert(ctx context.Context, spEntityID, userID string) (bool, error) {
	cs, ok := a.st.(store.Clients)
	if !ok {
		return true, nil
	}
	clients, err := cs.ListClients(ctx)
	if err != nil {
		return false, err
	}
	for _, c := range clients {
		if c.EntityID != spEntityID {
			continue
		}
		in, err := cs.InScope(ctx, store.Scope{ClientID: c.ID, RestrictAudience: c.RestrictAudience, Version: c.ScopeVersion}, []string{userID})
		if err != nil {
			return false, err
		}
		return in[userID], nil
	}
	return true, nil
}
