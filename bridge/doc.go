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
// It imports scim, scim/client, bridge/local and bridge/state (and Prometheus).
package bridge
