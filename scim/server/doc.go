// Package server is the hub's SCIM 2.0 HTTP handler (RFC 7643/7644, RFC 9865
// cursors) mounted under /scim/v2, plus the hub's Changes feed (DESIGN.md §3.1).
//
// It owns the wire behaviour: bearer-token authentication, routing, request
// parsing and validation, projection (attributes/excludedAttributes), ETags and
// conditional requests, paging, error bodies and request metrics. Directory data
// lives behind store.Store; filters are parsed by scim/filter and PATCH requests
// applied by scim/patch.
//
// elimity-com/scim supplies the schema model: the attribute table of package scim
// is converted once into elimity schema.Schema values which render /Schemas and
// validate POST/PUT bodies. Its Server is not used for resource routes because of
// gaps that matter here (each filled below and marked "elimity gap"): itemsPerPage
// reports the requested count, not what was returned; no ETag support in
// ServiceProviderConfig and no conditional requests; filters mixing core and
// extension attributes are rejected and filtering is done by scanning in memory;
// request bodies are read unbounded; every handler error must be an
// errors.ScimError and any other error's text is sent to the client; 304 and 410
// are "not applicable" to its status table and become 500.
//
// It imports package scim, scim/store, scim/filter, scim/patch, elimity-com/scim
// (schema, errors, optional) and prometheus/client_golang. It never imports a
// store backend.
package server
