package idp

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"
)

// Upstream routes: the hub as a SAML SP of an enterprise IdP.
const (
	PathUpstreamMetadata = "/saml/upstream/metadata"
	PathUpstreamACS      = "/saml/upstream/acs"
	PathUpstreamLogin    = "/saml/upstream/login"
	PathUpstreamResume   = "/saml/upstream/resume"
)

// upstreamPendingCookie carries the SAML request a login through the upstream
// IdP resumes (deflated; it is the user's own request, not a secret).
const upstreamPendingCookie = "connect_hub_upstream"

// upstreamPendingPath scopes that cookie on a plain-http hub; over https it
// is a __Host- cookie, which must have Path=/.
const upstreamPendingPath = "/saml/upstream/"

// maxPendingCookie bounds that cookie (browsers drop cookies over ~4 KB).
const maxPendingCookie = 3800

// Upstream-match errors.
var (
	// ErrAmbiguous: several hub users match the upstream identity.
	ErrAmbiguous = errors.New("idp: several users match")
)

// UpstreamIdentity is what the enterprise IdP asserted.
type UpstreamIdentity struct {
	NameID string
	// Attributes by Name and by FriendlyName.
	Attributes map[string][]string
}

// UpstreamUsers turns an upstream identity into a hub user.
type UpstreamUsers interface {
	// MatchUpstream returns the hub user the identity belongs to (by the
	// configured attribute), creating it when that is enabled. ErrNotFound
	// when no user matches; ErrAmbiguous when several do.
	MatchUpstream(ctx context.Context, id UpstreamIdentity) (User, error)
}

// UpstreamConfig makes the login page offer "Log in with <Name>": the hub acts
// as a SAML SP of that IdP.
type UpstreamConfig struct {
	// Name is shown on the login page.
	Name string
	// Metadata is the enterprise IdP's metadata URL (http(s)) or file.
	Metadata string
	// Users matches asserted identities to hub users.
	Users UpstreamUsers
	// Key returns the hub SP's RSA key pair (PEM); the hub keeps it in the
	// store so replicas agree.
	Key func(ctx context.Context) (keyPEM, certPEM []byte, err error)
	// HTTPClient fetches the metadata; nil uses a 30-second client.
	HTTPClient *http.Client
	// Refresh is how often the metadata is fetched again (default 1h).
	Refresh time.Duration
}

// upstream is the lazily built SP side.
type upstream struct {
	p   *IdP
	cfg UpstreamConfig

	mu     sync.Mutex
	mw     *samlsp.Middleware
	built  time.Time
	keySum string
}

func (u *upstream) middleware(ctx context.Context) (*samlsp.Middleware, error) {
	now := u.p.now()
	keyPEM, certPEM, err := u.cfg.Key(ctx)
	if err != nil {
		return nil, fmt.Errorf("upstream SP key: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	refresh := u.cfg.Refresh
	if refresh <= 0 {
		refresh = time.Hour
	}
	if u.mw != nil && u.keySum == string(keyPEM) && now.Sub(u.built) < refresh && !now.Before(u.built) {
		return u.mw, nil
	}
	md, err := u.fetchMetadata(ctx)
	if err != nil {
		if u.mw != nil {
			u.p.log.Warn("upstream IdP metadata refresh failed; keeping the previous", "err", err)
			u.built = now
			return u.mw, nil
		}
		return nil, err
	}
	signer, cert, alg, err := ParseKeyPair(keyPEM, certPEM)
	if err != nil {
		return nil, fmt.Errorf("upstream SP key: %w", err)
	}
	if alg != AlgRSA {
		return nil, errors.New("upstream SP key must be RSA")
	}
	base, _ := url.Parse(u.p.base + "/")
	mw, err := samlsp.New(samlsp.Options{
		URL:          *base,
		Key:          signer,
		Certificate:  cert,
		IDPMetadata:  md,
		HTTPClient:   u.cfg.HTTPClient,
		MetadataPath: PathUpstreamMetadata,
		AcsPath:      PathUpstreamACS,
		SloPath:      "/saml/upstream/slo",
		SignRequest:  true,
		// Ask for no particular NameID format: the user is matched by an
		// attribute.
		Clock: u.clock(),
	})
	if err != nil {
		return nil, fmt.Errorf("upstream SP: %w", err)
	}
	mw.ServiceProvider.AuthnNameIDFormat = saml.UnspecifiedNameIDFormat
	// DESIGN.md §8: SHA-1 signatures are refused from the upstream IdP too,
	// an unsolicited Response is refused, and an assertion is accepted once
	// across every replica.
	mw.ServiceProvider.RejectSHA1Signatures = true
	mw.ServiceProvider.AllowIDPInitiated = false
	mw.ServiceProvider.ReplayCache = sharedReplays{u.p}
	mw.Session = upstreamSessions{u}
	// Over https the tracked-request cookies are __Host- cookies too
	// (HostCookiePrefix): Path=/ instead of the ACS path.
	if t, ok := mw.RequestTracker.(samlsp.CookieRequestTracker); ok && u.p.secure {
		t.NamePrefix = HostCookiePrefix + t.NamePrefix
		t.Path = "/"
		mw.RequestTracker = t
	}
	mw.OnError = u.onError
	u.mw, u.built, u.keySum = mw, now, string(keyPEM)
	return mw, nil
}

// Replay records of upstream assertions.
const (
	// replayKeyPrefix starts their Throttles keys (AccountKey uses "user:",
	// AddressKey "ip:").
	replayKeyPrefix = "saml-replay:"
	// replaySlack keeps a record past the moment crewjam stops accepting
	// the assertion, for clock differences between replicas.
	replaySlack = 5 * time.Minute
	// replayTimeout bounds the store write (crewjam passes no context).
	replayTimeout = 10 * time.Second
)

// sharedReplays is the upstream SP's saml.AssertionReplayCache, shared by
// every hub replica: the tracked-request cookie ties a Response to the
// browser that started the login, but whoever holds a captured Response and
// that cookie (a proxy log, a shared computer) could post it again, to this
// replica or another, until it expires.
//
// It keeps its records in Throttles, the IdP's store-backed counters: one
// counter per assertion ID (hashed: the ID is the IdP's choice of length),
// counted atomically in the shared store with a window that outlasts the
// assertion; a count above one is a replay. The hub's cleanup purges the
// counters with the stale login throttles a day later, long after crewjam
// stops accepting the assertion (MaxIssueDelay after its IssueInstant).
type sharedReplays struct{ p *IdP }

var _ saml.AssertionReplayCache = sharedReplays{}

// Consume implements saml.AssertionReplayCache: saml.ErrAssertionReplayed
// when id was consumed before; any store error refuses the assertion too.
func (c sharedReplays) Consume(id string, expiresAt time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), replayTimeout)
	defer cancel()
	now := c.p.now()
	window := max(expiresAt.Sub(now), 0) + replaySlack
	sum := sha256.Sum256([]byte(id))
	t, err := c.p.cfg.Throttles.RecordLoginFailure(ctx, replayKeyPrefix+hex.EncodeToString(sum[:]), now, window, 0, 0)
	if err != nil {
		return fmt.Errorf("record assertion id: %w", err)
	}
	if t.Failures > 1 {
		return saml.ErrAssertionReplayed
	}
	return nil
}

func (u *upstream) clock() *dsig.Clock {
	return dsig.NewFakeClock(funcClock{clockwork.NewRealClock(), u.p.now})
}

func (u *upstream) fetchMetadata(ctx context.Context) (*saml.EntityDescriptor, error) {
	src := u.cfg.Metadata
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		mu, err := url.Parse(src)
		if err != nil {
			return nil, fmt.Errorf("upstream metadata URL: %w", err)
		}
		client := u.cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 30 * time.Second}
		}
		md, err := samlsp.FetchMetadata(ctx, client, *mu)
		if err != nil {
			return nil, fmt.Errorf("fetch upstream IdP metadata: %w", err)
		}
		return md, nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("upstream IdP metadata: %w", err)
	}
	md, err := samlsp.ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("upstream IdP metadata: %w", err)
	}
	return md, nil
}

func (u *upstream) onError(w http.ResponseWriter, r *http.Request, err error) {
	p := u.p
	switch {
	case errors.Is(err, errSuspended):
		p.m.logins.WithLabelValues(resultSuspended).Inc()
		p.refuse(w, r, "suspended", http.StatusForbidden, "Account suspended", "Your account is suspended, so you cannot log in. Ask your administrator.")
	case errors.Is(err, ErrNotFound):
		p.m.logins.WithLabelValues(resultUpstreamUnknown).Inc()
		p.refuse(w, r, "upstream_unknown_user", http.StatusForbidden, "No account", "You logged in at "+u.cfg.Name+", but this hub has no account for you. Ask your administrator.")
	case errors.Is(err, ErrAmbiguous):
		p.m.logins.WithLabelValues(resultUpstreamUnknown).Inc()
		p.refuse(w, r, "upstream_ambiguous", http.StatusForbidden, "Account not clear", "You logged in at "+u.cfg.Name+", but several accounts of this hub match you. Ask your administrator.")
	case errors.Is(err, saml.ErrAssertionReplayed):
		p.m.logins.WithLabelValues(resultError).Inc()
		p.m.refusals.WithLabelValues("upstream_replay").Inc()
		p.requestLog(r).Warn("upstream login refused: assertion replayed", "addr", p.clientIP(r), "err", err)
		p.errorPage(w, r, http.StatusForbidden, "Login failed", "The login at "+u.cfg.Name+" could not be accepted. Try again, or ask your administrator.")
	default:
		p.m.logins.WithLabelValues(resultError).Inc()
		p.requestLog(r).Info("upstream login refused", "err", err)
		p.refuse(w, r, "upstream_response", http.StatusForbidden, "Login failed", "The login at "+u.cfg.Name+" could not be accepted. Try again, or ask your administrator.")
	}
}

// upstreamSessions is samlsp's SessionProvider: a valid upstream assertion
// starts a hub session for the matched user.
type upstreamSessions struct{ u *upstream }

func (s upstreamSessions) CreateSession(w http.ResponseWriter, r *http.Request, a *saml.Assertion) error {
	p := s.u.p
	id := UpstreamIdentity{Attributes: map[string][]string{}}
	if a.Subject != nil && a.Subject.NameID != nil {
		id.NameID = a.Subject.NameID.Value
	}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			for _, v := range at.Values {
				id.Attributes[at.Name] = append(id.Attributes[at.Name], v.Value)
				if at.FriendlyName != "" && at.FriendlyName != at.Name {
					id.Attributes[at.FriendlyName] = append(id.Attributes[at.FriendlyName], v.Value)
				}
			}
		}
	}
	user, err := s.u.cfg.Users.MatchUpstream(r.Context(), id)
	if err != nil {
		return err
	}
	if !user.Active {
		return errSuspended
	}
	if _, err := p.startSession(r.Context(), w, r, user); err != nil {
		return err
	}
	http.SetCookie(w, p.cookie(p.cookies.csrf, randomToken(), 0))
	p.m.logins.WithLabelValues(resultUpstream).Inc()
	p.requestLog(r).Info("login through the upstream IdP", "user_id", user.ID)
	return nil
}

func (s upstreamSessions) DeleteSession(http.ResponseWriter, *http.Request) error { return nil }

func (s upstreamSessions) GetSession(*http.Request) (samlsp.Session, error) {
	return nil, samlsp.ErrNoSession
}

// encodePending packs a pending request for the upstream cookie.
func encodePending(p pending) (string, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	fw.Write(raw)
	fw.Close()
	s := base64.RawURLEncoding.EncodeToString(buf.Bytes())
	if len(s) > maxPendingCookie {
		return "", errors.New("pending request too large")
	}
	return s, nil
}

func decodePending(s string) (pending, error) {
	var p pending
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return p, err
	}
	raw, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b)), 2*maxPending+1024))
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, err
	}
	return p, nil
}

func (p *IdP) upstreamMiddleware(w http.ResponseWriter, r *http.Request) *samlsp.Middleware {
	mw, err := p.up.middleware(r.Context())
	if err != nil {
		p.requestLog(r).Error("upstream IdP unavailable", "err", err)
		p.errorPage(w, r, http.StatusServiceUnavailable, "Login unavailable", p.up.cfg.Name+" cannot be reached right now. Try again later, or log in with your hub password.")
		return nil
	}
	return mw
}

func (p *IdP) serveUpstreamMetadata(w http.ResponseWriter, r *http.Request) {
	if mw := p.upstreamMiddleware(w, r); mw != nil {
		mw.ServeMetadata(w, r)
	}
}

// serveUpstreamLogin starts a login at the upstream IdP, keeping the pending
// SAML request (query fields saml_kind, saml_query, saml_form) in a cookie.
func (p *IdP) serveUpstreamLogin(w http.ResponseWriter, r *http.Request) {
	// Each start signs an AuthnRequest: throttled per address.
	if !p.allowStart(w, r) {
		return
	}
	q := r.URL.Query()
	pend := pending{Kind: q.Get(FieldSAMLKind), Query: q.Get(FieldSAMLQuery), Form: q.Get(FieldSAMLForm)}
	switch pend.Kind {
	case "", "redirect", "post", "idp":
	default:
		pend = pending{}
	}
	enc, err := encodePending(pend)
	if err != nil {
		p.refuse(w, r, "too_large", http.StatusBadRequest, "Bad request", "The login request is too large to go through "+p.up.cfg.Name+".")
		return
	}
	mw := p.upstreamMiddleware(w, r)
	if mw == nil {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: p.cookies.upstream, Value: enc, Path: p.cookies.upstreamPath, MaxAge: int(p.cfg.LoginWindow / time.Second),
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
	// The tracked request returns to the resume route, whatever this URL was.
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: PathUpstreamResume}
	mw.HandleStartAuthFlow(w, r2)
}

func (p *IdP) serveUpstreamACS(w http.ResponseWriter, r *http.Request) {
	if mw := p.upstreamMiddleware(w, r); mw != nil {
		mw.ServeACS(w, r)
	}
}

// serveUpstreamResume continues the SAML request that was pending when the
// user chose the upstream IdP, now that a hub session exists.
func (p *IdP) serveUpstreamResume(w http.ResponseWriter, r *http.Request) {
	s, u, ok, err := p.currentSession(r.Context(), r)
	switch {
	case errors.Is(err, errSuspended):
		p.refuse(w, r, "suspended", http.StatusForbidden, "Account suspended", "Your account is suspended, so you cannot log in. Ask your administrator.")
		return
	case err != nil:
		p.internalError(w, r, err)
		return
	case !ok:
		http.Redirect(w, r, PathLogin, http.StatusSeeOther)
		return
	}
	var pend pending
	if c, err := r.Cookie(p.cookies.upstream); err == nil {
		pend, _ = decodePending(c.Value)
		http.SetCookie(w, &http.Cookie{Name: p.cookies.upstream, Value: "", Path: p.cookies.upstreamPath, MaxAge: -1, HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
	}
	p.resume(w, r, pend, &freshLogin{s: s, u: u})
}

// upstreamLink is the login page's link to the upstream IdP.
func (p *IdP) upstreamLink(pend pending) string {
	v := url.Values{}
	if pend.Kind != "" {
		v.Set(FieldSAMLKind, pend.Kind)
		if pend.Query != "" {
			v.Set(FieldSAMLQuery, pend.Query)
		}
		if pend.Form != "" {
			v.Set(FieldSAMLForm, pend.Form)
		}
	}
	if len(v) == 0 {
		return PathUpstreamLogin
	}
	return PathUpstreamLogin + "?" + v.Encode()
}
