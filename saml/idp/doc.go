// Package idp is the hub's SAML 2.0 identity provider and login page, built on
// github.com/crewjam/saml (DESIGN.md §4, §8).
//
// It owns the SAML routes, the login form (CSRF, throttling, lockout,
// bounded password hashing), hub sessions, the assertions the hub issues and
// signing-key rollover. It never imports a store: it declares the small
// interfaces it needs (Users, Sessions, ServiceProviders, Keys, Throttles)
// and scim/hub adapts the directory store to them. It imports scim/password,
// crewjam/saml (+ samlsp for metadata parsing), goxmldsig and
// prometheus/client_golang.
//
// # Routes (relative to the hub URL, e.g. https://hub.example.org)
//
//	GET       /saml/metadata          signed IdP metadata; entity ID = this URL.
//	                                  During a key rollover it lists the next
//	                                  signing certificate after the current one.
//	GET, POST /saml/sso               AuthnRequest, HTTP-Redirect or HTTP-POST binding
//	GET, POST /saml/slo               LogoutRequest / LogoutResponse (Redirect, POST)
//	GET       /saml/idp-initiated?sp=ENTITY_ID[&RelayState=/local/path]
//	                                  unsolicited Response to a registered SP
//	GET       /login                  the login form (or "logged in as …")
//	POST      /login                  form submission (fields below)
//	GET, POST /logout                 confirm, then end the hub session and send
//	                                  LogoutRequests to the SPs it was used for
//
// Single logout reaches the SPs of the ending session whose registered
// metadata lists a SOAP SingleLogoutService over the back channel first
// (backchannel.go: signed SOAP LogoutRequests, concurrently, each bounded by
// Config.BackChannelTimeout, no redirects followed), so that one SP that is
// down never stops the logout of the others; crewjam then sends the browser
// only to the SPs that have no SOAP endpoint, or that are up but whose SOAP
// answer failed.
//
// With an upstream enterprise IdP (`hub serve --upstream-metadata URL_OR_FILE
// --upstream-name NAME [--upstream-match-attribute ATTR[=FIELD]]
// [--upstream-create-users]`), the hub is also a SAML SP of that IdP:
//
//	GET       /saml/upstream/metadata the hub's SP metadata (register it at the IdP)
//	GET       /saml/upstream/login    start a login there (the login page's link,
//	                                  id="upstream-login", carries the pending request)
//	POST      /saml/upstream/acs      the IdP's Response (signed requests, InResponseTo checked,
//	                                  no SHA-1, each assertion once across replicas)
//	GET       /saml/upstream/resume   continue the pending SAML request with the new session
//
// The asserted attribute (default email) must match exactly one hub user's
// field (email, userName, externalId or employeeNumber); no match shows "No
// account" unless --upstream-create-users is on. Suspended users are refused.
//
// # Registering a service provider
//
//	connect hub sps add --metadata FILE_OR_URL [--replace]   # prints the entity ID
//	connect hub sps list
//	connect hub sps remove ENTITY_ID
//
// The metadata must be one SP (an EntityDescriptor, or an EntitiesDescriptor
// with exactly one SP) with at least one AssertionConsumerService using the
// HTTP-POST binding; every ACS and SingleLogoutService location must be an
// http(s) URL. An SP whose metadata says AuthnRequestsSigned="true" must sign
// every AuthnRequest (SHA-1 signatures are refused). A running hub (every
// replica) sees a registration, replacement or removal within 2 seconds.
//
// # Logging a test user in
//
// Create the user with a password (`connect hub users import` with a
// password column, or `connect hub users set-password USERNAME` with the
// password on stdin). Then, with a client that keeps cookies:
//
//  1. Start at the SP, which sends the browser to /saml/sso. Without a hub
//     session the answer is 200 with the login page: a form with
//     id="login-form", method POST, action "/login", and the inputs
//     csrf_token (hidden, must be sent back unchanged), saml_kind,
//     saml_query, saml_form (hidden: the pending SAML request, send back
//     unchanged), username and password. The page sets the cookie
//     __Host-connect_hub_csrf (connect_hub_csrf on a plain-http hub; see
//     Cookies below), which must accompany the POST.
//  2. POST /login with those fields (application/x-www-form-urlencoded).
//     Success: 200 with an auto-submitting HTML form (action = the SP's ACS
//     URL) carrying SAMLResponse and RelayState, plus the session cookie
//     __Host-connect_hub_session (HttpOnly, SameSite=Lax, Secure, Path=/).
//     POST those two fields to the action URL.
//     Failure: 401 with the login page again and the single message
//     LoginFailedMessage in the element id="login-error" (wrong password,
//     unknown user and locked account all look the same); a wrong or missing
//     CSRF token gives 403 with the form again; a suspended user gets a 403
//     error page (id="title" "Account suspended") and no assertion.
//  3. Later SSO requests with the session cookie get the auto-submitting
//     form at once.
//
// An HTTP-POST AuthnRequest that arrives without the session cookie (a
// browser sends no SameSite=Lax cookie with an SP's cross-site POST) first
// gets a page whose form (id="resubmit-form") posts the same fields, plus
// connect_resubmitted=1, back to /saml/sso from the hub's own origin; submit
// it like the SP's form.
//
// Refused SAML requests (unknown SP, ACS not in the SP's metadata, unsigned
// request where signing is required, a SAMLRequest that inflates beyond
// 64 KiB, expired or malformed requests) get an HTML error page (4xx) whose
// heading has id="title"; no SAMLResponse is ever in it.
//
// # Cookies
//
// When the hub URL is https every cookie the IdP sets has the __Host- prefix
// (HostCookiePrefix: Secure, Path=/, no Domain; CookieName gives the name),
// so that another host of the same site cannot set or shadow the session or
// CSRF cookie. A plain-http hub (--insecure-http, a loopback demo) cannot
// set a Secure cookie, so its cookies keep the bare names connect_hub_session,
// connect_hub_csrf and connect_hub_upstream. After an upgrade, a browser's
// cookie under the bare name is deleted and not honoured over https: its
// user logs in once more. crewjam's logout-state cookie (saml_idp_logout,
// Path=/saml/slo) keeps its name.
//
// # Assertions
//
// Response and Assertion are both signed (RSA-SHA256 by default, ECDSA-SHA256
// with a P-256 key; SHA-1 is never used). The Subject has a persistent NameID
// whose value is the user's SCIM id (NameQualifier = the hub's entity ID,
// SPNameQualifier = the SP's). SubjectConfirmationData carries Recipient
// (the ACS URL), InResponseTo (the AuthnRequest ID; absent only for
// IdP-initiated SSO) and NotOnOrAfter; Conditions carry the Audience (the
// SP's entity ID) and a 5-minute validity. Attributes (NameFormat basic,
// xs:string): userName, email, givenName, sn, displayName and groups (one
// value per audience the user is a direct member of). The assertion is
// encrypted when the SP's metadata has an encryption key. An SP that is a
// client system's (its EntityID) only receives users in that client's scope
// (its restrict audience); others get the error page "No access".
//
// The signed Response is written by this package directly in exclusive
// canonical form (response.go; the same document and signatures crewjam
// makes, at a fraction of the CPU); Responses to SPs with an encryption key,
// to HTTP-POST-SimpleSign endpoints and error Responses are crewjam's.
//
// ECDSA SignatureValues are r || s as XML-DSig 1.1 §6.4.3 defines them (what
// xmlsec1, Santuario and OneLogin verify; lasso 2.8 has no ECDSA at all, so
// mod_auth_mellon SPs need RSA). Connect bridges (saml/sp) convert before
// goxmldsig verifies, but other SPs built on goxmldsig v1.6.1 (crewjam/saml,
// gosaml2) verify only DER ECDSA signatures: keep the default RSA-SHA256 for
// them.
//
// # Keys
//
// The first SAML request (usually the first metadata fetch) generates a key
// (RSA-2048, or ECDSA P-256 with --saml-signing ecdsa) into the store, shared
// by every replica (replicas racing to create it keep one). `connect hub
// keys rotate [--overlap 48h]` adds the next key: metadata lists it at once,
// and it starts signing when the overlap ends, so an SP that refreshes
// metadata within the overlap never sees an unknown key. --saml-key and
// --saml-cert replace the stored keys with a key pair from files.
//
// # Login protection
//
// Failed logins are counted per account (5 in 15 minutes lock it for 15
// minutes, until `connect hub users unlock USERNAME`) and per source address
// (50 in 15 minutes block it; behind a reverse proxy, name it with
// --trusted-proxies so that X-Forwarded-For gives the real address). Password hashing runs in a bounded number of
// slots (GOMAXPROCS+1, each argon2id hash holds 19 MiB), so a login storm
// cannot exhaust memory. Anonymous login starts (/saml/sso and
// /saml/idp-initiated without a valid session, /saml/upstream/login) are
// throttled per address in process (a token bucket, StartBurst 60 refilled
// at StartRate 20/s; IPv6 by /64; at most 32,768 addresses remembered): past
// it the answer is 429 with Retry-After and a generic page. Bcrypt and weak
// argon2id hashes are replaced with argon2id at the next successful login.
// The session id is new at every login and only its SHA-256 is stored.
package idp
