// Package hub composes the hub's HTTP server and holds the hub services that sit
// above the SCIM core: the mux (/scim/v2, /healthz, /readyz, /metrics), request ids,
// access logging and panic recovery, the directory-size metrics, the journal
// trimmer, admin tokens, hub settings and the CSV user import.
//
// It imports package scim, scim/store (the contract, never a backend), scim/server
// and scim/password, plus prometheus/client_golang.
package hub
