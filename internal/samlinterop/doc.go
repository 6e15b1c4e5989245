// Package samlinterop proves that the hub's SAML identity provider works with
// SAML implementations this project did not write. Each test builds the real
// `connect` binary, runs `connect hub serve` on a fresh SQLite store, creates a
// user through SCIM, sets its password with `connect hub users set-password`,
// registers a service provider with `connect hub sps add`, and then logs in the
// way a browser does (a cookie-keeping HTTP client that reads and submits the
// hub's login form, CSRF token included) through a real peer:
//
//   - python3-onelogin-saml2 in strict mode, InResponseTo checked, signed
//     requests, encrypted assertion; single logout both ways
//     (testdata/onelogin_sp.py: TestOneLoginStrict, TestOneLoginSLO);
//   - python3-lasso (testdata/lasso_sp.py: TestLasso);
//   - github.com/russellhaering/gosaml2, whose WarningInfo must be empty, with
//     HTTP-Redirect and HTTP-POST requests, IsPassive and ForceAuthn
//     (TestGosaml2);
//   - xmlsec1 --verify on the response, assertion and metadata signatures
//     (TestXmlsec1; TestECDSA with `--saml-signing ecdsa`);
//   - Apache httpd with mod_auth_mellon protecting a page, plus session reuse,
//     single logout and IdP-initiated SSO (testdata/mellon:
//     TestMellon, TestMellonSessions);
//   - a signing-key rollover seen by SPs holding old and new metadata
//     (TestKeyRotation);
//   - refusals through real SPs, each counted under its reason in the hub's
//     metrics (TestRefusals);
//   - SimpleSAMLphp as an upstream IdP in front of the hub, including an
//     enterprise user without a hub account and one whose account is
//     suspended (testdata/simplesamlphp: TestUpstreamSimpleSAMLphp).
//
// The peers are Debian packages that .ci/run installs; a test whose peer is
// missing skips locally and fails when CONNECT_TEST_REQUIRE_SERVICES=1.
// Python runs as /usr/bin/python3 (Debian's, which sees the python3-*
// packages). Apache runs as its own instance in a temporary directory on a
// loopback port; started as root, its workers run as nobody.
//
// It has no non-test code; it imports internal/testenv and the peers only.
package samlinterop
