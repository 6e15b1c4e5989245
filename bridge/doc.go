// Package bridge is the sync engine of a Connect bridge (DESIGN.md §6): it reads
// users and groups from one or more hubs (or any SCIM 2.0 server) and keeps the
// site's local directory in step.
//
// Every run of a task (users, collections, cleanup) first plans, then applies:
// the plan lists creates, updates, links (account mapping), suspensions,
// reactivations, deletions and group changes, each with the rule that caused
// it. Non-destructive items are applied page by page as the listing streams in;
// destructive ones (deletions, removals) wait until the listing is known to be
// complete and the safety valves (deletion threshold, empty or shrunken
// listing, failed or short page) have passed — otherwise the plan is held for
// an operator to approve or reject.
//
// The package declares what it needs from its collaborators as small
// interfaces: Source (the hub, read through scim/client), Target (the local
// directory, satisfied by bridge/local.Directory) and State (satisfied by
// bridge/state.State). It never imports a backend or the SCIM server.
//
// # Choices where DESIGN.md is silent
//
//   - Modes of the users task: a full reconcile when the state is not Ready (a
//     new server, or Redis lost), daily (users-full-interval), on --full, or when
//     the feed cursor expired; otherwise the hub's Changes feed from the stored
//     cursor, or — against a server without a feed — a listing filtered by
//     meta.lastModified ge (last seen − modified-overlap), de-duplicated by the
//     content hash stored with each link.
//   - Removal: a feed record "deleted" soft-deletes (whatever removal-action
//     says); "out_of_scope" and absence from a complete full listing apply
//     removal-action (keep, suspend — the default — or delete, which is also a
//     soft delete). A plain SCIM server cannot say why a user vanished, so its
//     deletions take the removal action. Soft-deleted accounts are purged by the
//     cleanup task after delete-grace (default 30 days).
//   - Before any removal is applied (at once, or after approval) the source is
//     asked for the resource (GET by id): one that is still served is never
//     removed, so a listing that skipped it (index paging while the source
//     changed) cannot delete anyone.
//   - Valves: more than delete-threshold-count destructive items, or more than
//     delete-threshold-percent of the server's accounts once there are more
//     than delete-threshold-min of them (default 10, so a small site can lose a
//     user without an approval), an empty listing while accounts exist, a failed
//     or short or inconsistent page. Creates and updates of the pages that did
//     arrive are applied; nothing is removed. A held plan survives later
//     increments that hold nothing new (its id stays, so an operator approves
//     what they saw); a full reconcile replaces it.
//   - Account mapping keys: username (case-insensitive), email (only when the
//     hub sends emailVerified true), idnumber (enterprise employeeNumber =
//     local ID number) and uniqueid (the hub user's id, the Connect unique ID,
//     = local ID number — where a site recorded it). Candidates are manual,
//     non-deleted accounts; two or more, or a privileged one, refuse the user
//     (no account is created) and every run reports it again. A target that
//     cannot mark privileged accounts (a SCIM target without metadata)
//     refuses every match, since any candidate may be a site administrator.
//   - Usernames: "tc" + 13 base32 characters of SHA-256(server id, hub user
//     id); removing userName from the exclusions makes the local username
//     follow the hub's userName instead.
//   - Exclusions also keep excluded values out of creates; fields a target
//     does not store (Capabilities.Fields) are never compared.
//   - After a failed page or lost state nothing is concluded: the next run is
//     a full reconcile that rebuilds the link map from the local directory's
//     (server, hub user id) keys, so it never duplicates an account.
//
// It imports scim, scim/client, bridge/local and bridge/state (and Prometheus).
package bridge
