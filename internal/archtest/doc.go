// Package archtest enforces the import rules of DESIGN.md §9 with `go list`: the
// scim leaf is stdlib-only, imports point down the layer table, servers never
// import a store backend, saml/* never imports stores, the bridge never imports
// scim/server, and only cmd/connect imports backends.
//
// It has no non-test code and imports the standard library only.
package archtest
