// Package sso connects the bridge to its SAML service provider (saml/sp): it
// implements the interfaces saml/sp declares on the bridge's own parts and
// wires them, with the setup-secret handshake, into one HTTP handler that
// `connect bridge serve` mounts at the root of the bridge's URL.
//
//   - Accounts maps an asserted hub user to its local account with the rules
//     of the sync (bridge.Engine.SyncUser): an account the sync has not made
//     yet is made just in time when the hub still serves the user to this
//     bridge (its scope), an account Connect suspended or deleted is brought
//     back when the hub says it may be, and a user the hub no longer serves is
//     out of scope.
//   - LocalAuth checks the local form with bridge/local.Authenticate: manual
//     accounts always, connect accounts only with a synced password hash and
//     only while their hub cannot be reached (DESIGN.md §6).
//   - Hubs lists the servers connected by the handshake, each with the IdP
//     metadata pinned when it connected.
//   - Sessions adapts the bridge state (bridge/state) to sp.Sessions and
//     sp.ReplayCache: Redis when the bridge runs with --redis, so every
//     replica sees every session and every SAML message id.
//   - The SP key pair lives in the bridge's records (the local store), made
//     once and shared by every replica on that store.
//
// It imports bridge, bridge/local, bridge/state (contracts only, never a
// backend), saml/sp and scim.
package sso
