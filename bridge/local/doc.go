// Package local is the contract of a bridge's local directory: the client site's
// own accounts and groups, which the sync engine keeps in step with one or more
// hubs (DESIGN.md §6).
//
// An Account is either a manual account (made and owned by the site) or a connect
// account (made from a hub user, identified by its hub server id and the hub
// user's immutable SCIM id). A Group is a local group, or an audience or course
// of a hub made into a locked local group that site administrators cannot edit.
//
// Backends live beside it: sqlite/ (embedded default), postgres/ (several bridge
// replicas) and scimtarget/ (provisions into a site application's own SCIM 2.0
// endpoint). All of them pass localtest.Run; what a backend cannot do is stated by
// its Capabilities, and localtest skips only those checks.
//
// Writes are idempotent: applying the same PutAccounts item or membership change
// twice leaves the directory as applying it once, and the second time reports
// OpUnchanged. The engine relies on this to retry after a crash or a lost reply
// without ever creating a duplicate account.
//
// Password checks (Authenticate) live here, once, on top of any Directory; the
// backends only store the PHC string. The caller decides whether a connect
// account may use its synced hash (AuthOptions.AllowConnect: only while its hub
// is unreachable).
//
// Records is an optional ability of the SQL backends: small durable records of
// the bridge itself (connected servers, settings, hashed single-use setup
// secrets) kept in the same database as the accounts.
//
// It imports the standard library and scim/password only.
package local
