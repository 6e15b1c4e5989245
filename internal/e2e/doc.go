// Package e2e holds the browser end-to-end tests of the whole system: real
// `connect hub serve` and `connect bridge serve` processes on SQLite, the
// setup-secret handshake done with the CLI, real nginx in front of a small
// protected site (the shipped deploy/nginx auth_request configuration), and
// headless Chromium driven by chromedp clicking through the pages a person
// sees. A second test runs `connect demo` in the browser and takes the README's
// screenshots (go test ./internal/e2e -run Demo -screenshots).
//
// The package has tests only. They need chromium and nginx on PATH: they skip
// locally without them and fail when CONNECT_TEST_REQUIRE_SERVICES=1 (.ci/run).
package e2e
