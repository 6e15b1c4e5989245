// Package patch applies SCIM PATCH requests (RFC 7644 §3.5.2) to hub resources:
// add, remove and replace with attribute paths, sub-attributes, extension (URN)
// paths and value-path filters, plus the quirks of real provisioning clients
// (Entra ID's PascalCase ops, "False" strings, remove-with-value on members and
// string managers; Okta's path-less replace objects).
//
// Users are patched whole, in memory, through a generic JSON map that is checked
// against the attribute schema table of package scim. Groups are patched without
// their member list: membership changes are folded into a store.MemberOps that
// the store applies row by row, so a 100,000-member group is never loaded.
//
// Every client error is a *scim.Error with the RFC 7644 §3.12 scimType; a failed
// request leaves its input unchanged.
//
// It imports package scim, scim/filter (path and value-filter parsing) and
// scim/store (for MemberOps) only.
package patch
