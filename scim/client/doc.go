// Package client is a SCIM 2.0 client (RFC 7644) over net/http, written for a
// provisioning engine that must never lose or invent a resource: it pages
// listings by startIndex/count (or RFC 9865 cursors when the server offers
// them), trusts only the resources it actually received, and reports a short,
// empty, replayed or otherwise inconsistent page as an error instead of ending
// the listing early. It also reads the hub's Changes feed (DESIGN.md §3.1).
//
// Transport behaviour: keep-alive connections, gzip, bearer token, a timeout per
// attempt, retries with exponential backoff and jitter on 429, 5xx and network
// errors for idempotent requests, Retry-After honoured (seconds or HTTP date).
//
// It imports the standard library and package scim only.
package client
