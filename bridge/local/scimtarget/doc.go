// Package scimtarget is a local directory that provisions into a site
// application's own SCIM 2.0 endpoint (RFC 7643/7644) over net/http: the bridge
// keeps the site's accounts in step by writing users and groups there instead of
// into a database.
//
// Users are created with POST, changed with PUT (guarded by If-Match when the
// target sends ETags) and removed with DELETE. Groups are created with POST and
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
