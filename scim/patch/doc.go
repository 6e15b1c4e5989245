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
// Choices where RFC 7644 is silent or real clients differ:
//   - add through a value filter that matches nothing creates the value the filter
//     describes when it is an "eq"/"and" of literals (Entra ID adds
//     `phoneNumbers[type eq "mobile"].value` this way); replace fails with noTarget.
//   - remove through a filter that matches nothing is a no-op (clients retry).
//   - replace with a null value unassigns, as in PUT; "value": [] on remove of a
//     multi-valued attribute removes nothing, a value list removes those values.
//   - a path-less value may echo the unchanged "id" and any "meta" (Okta does);
//     both are ignored. Read-only sub-attributes inside values are dropped.
//   - a string given for a complex attribute with a "value" sub-attribute means
//     {"value": s} (Entra ID's enterprise manager).
//   - a value made primary clears primary on the others (RFC 7643 §2.4).
//
// Every client error is a *scim.Error with the RFC 7644 §3.12 scimType; a failed
// request leaves its input unchanged.
//
// It imports package scim, scim/filter (path and value-filter parsing) and
// scim/store (for MemberOps) only.
package patch
