// Package conformance runs outside SCIM test suites, unchanged, against a real hub
// process built from cmd/connect: Microsoft's SCIM Postman collection under newman.
// Where a test of such a suite contradicts RFC 7643/7644 it is listed in
// rfcContradictions with the section, instead of bending the server.
//
// It has no non-test code; its tests import internal/testenv and internal/testenv/hubproc.
package conformance
