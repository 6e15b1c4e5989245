// Package sp is the bridge's side of single sign-on: a SAML service provider
// (crewjam/saml) for every connected hub, the site's /login page with the local
// form for manual accounts, browser sessions shared by replicas, single logout,
// and the /connect/auth forward-auth endpoint that nginx auth_request or
// Traefik ask before serving a protected page.
//
// Routes (relative to the bridge's public URL, see Handler):
//
//	GET  /saml/metadata, /connect/v1/metadata  SP metadata (one entity per bridge)
//	GET  /saml/login?hub=ID&rd=PATH            start a login at a hub (AuthnRequest)
//	POST /saml/acs                             assertion consumer service
//	GET|POST /saml/slo                         single logout (requests and responses)
//	GET|POST /login                            login page: one button per hub + local form
//	GET|POST /logout                           end the session (and the hub's, by SLO)
//	GET  /connect/auth[?group=G…][&redirect=1]  forward auth: 202 / 401 (302) / 403
//
// Security choices (DESIGN.md §8): responses must be signed by the hub's pinned
// metadata key with SHA-256 or better; exactly one assertion per response (no
// XSW wrapping); audience, recipient, destination, issuer and validity are
// checked with a bounded clock skew; every AuthnRequest ID is answered at most
// once (recorded in the shared ReplayCache, so two replicas cannot both accept
// it) and every assertion and response ID is accepted once; IdP-initiated
// responses are refused; the pending request lives in the shared Sessions store
// and is bound to the browser that started it by a cookie; RelayState is an
// opaque token and a return-to is only ever a same-origin relative path.
// Session ids are 256 random bits, stored only as their SHA-256 hash, rotated
// at every login; cookies are HttpOnly, SameSite=Lax and Secure (with the
// __Host- prefix) when the bridge URL is https. Forms carry a CSRF token.
//
// The package never imports a store or a bridge package: it declares what it
// needs (Hubs, Sessions, ReplayCache, Accounts, LocalAuth) and the bridge adapts
// its state and local directory to them. It imports crewjam/saml, etree,
// goxmldsig, clockwork and Prometheus besides the standard library.
//
// Wiring (`connect bridge serve`): the bridge state (bridge/state) provides
// the sessions and the replay cache through a four-method adapter that copies
// state.Session to StoredSession and wraps state.ErrNotFound with ErrNotFound
// (state.State.Seen already is ReplayCache.Seen); see stateSessions in the
// tests. Then:
//
//	s, err := sp.New(sp.Config{
//		BaseURL: cfg.URL, SiteName: name, KeyPEM: key, CertPEM: cert,
//		Hubs: hubs, Sessions: adapter, Replay: adapter, Accounts: accounts, Local: local,
//		AutoSSO: func(ctx context.Context) bool { return setting(ctx, "auto-sso") == "true" },
//		Logger: log, Registerer: reg,
//	})
//	mux.Handle("/", s.Handler()) // /connect/v1/register, /metrics, … beside it
//
// The handshake answers the hub with s.Metadata(ctx). Keep the key pair in the
// bridge's store (NewKeyPair makes one) so every replica signs with it.
package sp
