// Package state is the bridge's state contract: what a bridge remembers between
// runs about each hub it syncs from, and what its replicas share.
//
// Per hub (the hub's server id, a string): the link map from hub resource ids to
// local ids (users and groups, with a reverse lookup) and the content hash of the
// last resource applied through each link; named sync cursors; the last (or held)
// plan of each task; task locks with fencing tokens; a readiness mark that tells
// the engine whether the map is complete; and the SAML replay cache. SSO sessions
// are shared by all hubs (looked up by session id) and indexed by (hub, subject)
// for single logout, and so are the throttle counters of the local login form
// (Attempt), so that replicas together allow only the configured number of
// failed logins. Setup secrets are not here: they live in the local directory.
//
// State is a cache of facts that can be rebuilt: when it is lost (a Redis restarted
// empty) Ready reports false and the engine runs a full reconcile that rebuilds
// the map from the local directory. Nothing here may be the only record of an
// account.
//
// Backends live beside it (memory/, redis/) and all pass statetest.Run. Every
// write is idempotent — applying it twice leaves the same state as applying it
// once — because a Redis client may resend a command that already ran.
//
// It imports the standard library only.
package state
