// Package scim holds the SCIM 2.0 wire model shared by the hub and the bridge: the
// resource types (User, Group), schema URNs, the attribute schema table that drives
// validation, filtering, PATCH and projection, and the SCIM error type.
//
// It is the leaf of the module: it imports the standard library only.
package scim
