// Package samlinterop proves that the hub's SAML identity provider works with
// SAML implementations this project did not write. Each test builds the real
// `connect` binary, runs `connect hub serve` on a fresh SQLite store, creates a
// user through SCIM, sets its password with `connect hub users set-password`,
// registers a service provider with `connect hub sps add`, and then logs in the
// way a browser does (a cookie-keeping HTTP client that reads and submits the
// hub's login form, CSRF token included) through a real peer:
//
//   - python3-onelogin-saml2 in strict mode, InResponseTo checked
//     (testdata/onelogin_sp.py);
//   - python3-lasso (testdata/lasso_sp.py);
//   - github.com/russellhaering/gosaml2, whose WarningInfo must be empty;
//   - xmlsec1 --verify on the response and the assertion signatures;
//   - Apache httpd with mod_auth_mellon protecting a page
//     (testdata/apache-mellon.conf.tmpl);
//   - SimpleSAMLphp as an upstream IdP in front of the hub
//     (testdata/simplesamlphp/).
//
// The peers are Debian packages that .ci/run installs; a test whose peer is
// missing skips locally and fails when CONNECT_TEST_REQUIRE_SERVICES=1.
//
// It has no non-test code; it imports internal/testenv and the peers only.
package samlinterop
