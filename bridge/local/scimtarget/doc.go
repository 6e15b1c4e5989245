// Package scimtarget is a local directory that provisions into a site
// application's own SCIM 2.0 endpoint (RFC 7643/7644) over net/http: the bridge
// keeps the site's accounts in step by writing users and groups there instead of
// into a database.
//
// Users are created with POST and removed with DELETE. An update writes only
// the synced fields that changed, so the site keeps its other emails, phones
// and addresses, its roles, entitlements, manager, custom fields and own
// extensions: a PATCH with value-path filters (emails[value eq "…"].value,
// addresses[type eq "work"].locality, customFields[name eq "…"]), or, when the
// ServiceProviderConfig has no PATCH (or a change has no path), a merge onto
// the raw resource PUT back whole. Both carry If-Match when the target has
// ETags; a 412 (or a value filter that no longer matches) reads and merges
// again. Groups are created with POST and
// changed only with PATCH: attributes by replace operations, members in chunks
// of Config.MemberChunk add/remove operations — never a PUT of a whole group, so
// a course with 100,000 members is never rewritten to change one. 429 answers
// are retried after their Retry-After; 5xx answers, timeouts and dropped
// connections with exponential backoff and jitter. Every request is safe to
// repeat: a create that already happened is found again by its key.
//
// Mapping: userName, name, displayName, emails (primary), active, title,
// preferredLanguage, timezone, addresses (work: locality, country), phoneNumbers,
// enterprise employeeNumber/organization/department. A connect account's
// externalId is "server:hubUserId" (each query-escaped); a group made by Connect
// carries "server:hubGroupId:locked|open". With Config.Extension the Connect
// user extension carries emailVerified, interests and customFields; with
// Config.Metadata, reserved "connect:…" custom fields carry what plain SCIM has no
// place for (suspendedBy, the soft-delete time, privileged); with
// Config.PasswordHashes the extension's passwordHash is written and read back.
// Capabilities reports what follows from that configuration.
//
// Limits of a SCIM target, beyond its Capabilities: batches are not
// transactional (a retry completes them); a member page is cut from the whole
// member list, which is fetched for every GroupMembers call; listings filter
// some accounts after fetching, so pages may be short.
//
// It imports bridge/local and scim (the wire model) only.
package scimtarget
