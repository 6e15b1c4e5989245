// Package records is the bridge's state without Redis: the task locks (with
// their fencing tokens) and the tasks' plans live in the bridge's records
// database — the site's local store (SQLite or PostgreSQL) that every bridge
// process of the site opens with the same --store — and everything else (the
// link map, hashes, cursors, the ready mark, SSO sessions, the replay cache and
// login throttles) in an inner state, the in-process memory backend.
//
// So `connect bridge plans show|approve|reject` run as a separate process see
// and decide the plans a serving bridge holds, and `connect bridge sync` finds
// a task locked by a running `connect bridge serve` (and the reverse) instead
// of writing the local directory at the same time. Losing the inner state (a
// restart) costs a full reconcile, which rebuilds the link map from the local
// directory and neither duplicates nor deletes (see bridge.run.usersFull).
//
// The inner state is private to its process, so when this process takes a
// task lock that another process held since (the CLI ran a sync, or applied an
// approved plan), the links and hashes cached here may no longer match the
// local directory: Acquire then forgets them, and the run reconciles in full.
//
// Fenced writes to the inner state (Apply, SetCursor, MarkReady) check the
// fence in the database first; the inner state is private to its process, so
// the only writer that can slip between that check and the write is a stale
// run of this same process, and that one is stopped by its failing renewal.
// Fenced plan writes are checked in the same SQL statement that writes them.
//
// It imports bridge/state and bridge/local (the records contract) only; the
// command wires it over a memory state and the local directory.
package records
