package scim

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Meta is the common "meta" attribute (RFC 7643 §3.1). Version is the weak ETag
// (W/"n") derived from the store's row version.
type Meta struct {
	ResourceType string    `json:"resourceType,omitempty"`
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"lastModified"`
	Location     string    `json:"location,omitempty"`
	Version      string    `json:"version,omitempty"`
}

// ETag returns the weak entity tag for a row version.
func ETag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// ParseETag returns the row version of a W/"n" or "n" entity tag, or false.
func ParseETag(tag string) (int64, bool) {
	tag = strings.TrimSpace(tag)
	tag = strings.TrimPrefix(tag, "W/")
	if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		return 0, false
	}
	n, err := strconv.ParseInt(tag[1:len(tag)-1], 10, 64)
	return n, err == nil
}

// Bool is a SCIM boolean that also accepts the strings "true"/"false" in any case,
// as Entra ID sends ("active":"False").
type Bool bool

// UnmarshalJSON accepts true, false, "true", "false" (case-insensitive).
func (b *Bool) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			*b = true
			return nil
		case "false":
			*b = false
			return nil
		}
		return BadRequest(ErrTypeInvalidValue, "%q is not a boolean", s)
	}
	var v bool
	if err := json.Unmarshal(data, &v); err != nil {
		return BadRequest(ErrTypeInvalidValue, "expected a boolean")
	}
	*b = Bool(v)
	return nil
}

// BoolPtr returns a pointer to b.
func BoolPtr(b bool) *Bool { v := Bool(b); return &v }

// Name is the User "name" complex attribute.
type Name struct {
	Formatted       string `json:"formatted,omitempty"`
	FamilyName      string `json:"familyName,omitempty"`
	GivenName       string `json:"givenName,omitempty"`
	MiddleName      string `json:"middleName,omitempty"`
	HonorificPrefix string `json:"honorificPrefix,omitempty"`
	HonorificSuffix string `json:"honorificSuffix,omitempty"`
}

// MultiValue is one value of a multi-valued attribute such as emails or phoneNumbers.
type MultiValue struct {
	Value   string `json:"value,omitempty"`
	Display string `json:"display,omitempty"`
	Type    string `json:"type,omitempty"`
	Primary Bool   `json:"primary,omitempty"`
}

// Address is one value of "addresses".
type Address struct {
	Formatted     string `json:"formatted,omitempty"`
	StreetAddress string `json:"streetAddress,omitempty"`
	Locality      string `json:"locality,omitempty"`
	Region        string `json:"region,omitempty"`
	PostalCode    string `json:"postalCode,omitempty"`
	Country       string `json:"country,omitempty"`
	Type          string `json:"type,omitempty"`
	Primary       Bool   `json:"primary,omitempty"`
}

// GroupRef is one (read-only) value of a User's "groups".
type GroupRef struct {
	Value   string `json:"value"`
	Ref     string `json:"$ref,omitempty"`
	Display string `json:"display,omitempty"`
	Type    string `json:"type,omitempty"`
}

// Manager is the enterprise "manager" attribute.
type Manager struct {
	Value       string `json:"value,omitempty"`
	Ref         string `json:"$ref,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
}

// EnterpriseUser is the enterprise extension (RFC 7643 §4.3).
type EnterpriseUser struct {
	EmployeeNumber string   `json:"employeeNumber,omitempty"`
	CostCenter     string   `json:"costCenter,omitempty"`
	Organization   string   `json:"organization,omitempty"`
	Division       string   `json:"division,omitempty"`
	Department     string   `json:"department,omitempty"`
	Manager        *Manager `json:"manager,omitempty"`
}

// CustomField is one custom profile field of the Connect extension.
type CustomField struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// ConnectUser is the Connect user extension (DESIGN.md §3).
type ConnectUser struct {
	Interests     []string      `json:"interests,omitempty"`
	CustomFields  []CustomField `json:"customFields,omitempty"`
	PasswordHash  string        `json:"passwordHash,omitempty"`
	EmailVerified *Bool         `json:"emailVerified,omitempty"`
}

// User is a SCIM User with the enterprise and Connect extensions.
//
// Password is write-only (returned: never): the store keeps only its hash in
// Connect.PasswordHash, and readers must clear both unless the caller may see hashes.
type User struct {
	Schemas           []string        `json:"schemas,omitempty"`
	ID                string          `json:"id,omitempty"`
	ExternalID        string          `json:"externalId,omitempty"`
	UserName          string          `json:"userName"`
	Name              *Name           `json:"name,omitempty"`
	DisplayName       string          `json:"displayName,omitempty"`
	NickName          string          `json:"nickName,omitempty"`
	ProfileURL        string          `json:"profileUrl,omitempty"`
	Title             string          `json:"title,omitempty"`
	UserType          string          `json:"userType,omitempty"`
	PreferredLanguage string          `json:"preferredLanguage,omitempty"`
	Locale            string          `json:"locale,omitempty"`
	Timezone          string          `json:"timezone,omitempty"`
	Active            *Bool           `json:"active,omitempty"`
	Password          string          `json:"password,omitempty"`
	Emails            []MultiValue    `json:"emails,omitempty"`
	PhoneNumbers      []MultiValue    `json:"phoneNumbers,omitempty"`
	IMs               []MultiValue    `json:"ims,omitempty"`
	Photos            []MultiValue    `json:"photos,omitempty"`
	Addresses         []Address       `json:"addresses,omitempty"`
	Groups            []GroupRef      `json:"groups,omitempty"`
	Entitlements      []MultiValue    `json:"entitlements,omitempty"`
	Roles             []MultiValue    `json:"roles,omitempty"`
	X509Certificates  []MultiValue    `json:"x509Certificates,omitempty"`
	Enterprise        *EnterpriseUser `json:"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,omitempty"`
	Connect           *ConnectUser    `json:"urn:ietf:params:scim:schemas:extension:connect:2.0:User,omitempty"`
	Meta              *Meta           `json:"meta,omitempty"`
}

// IsActive reports whether the user is active (absent means active).
func (u *User) IsActive() bool { return u.Active == nil || bool(*u.Active) }

// PrimaryEmail returns the primary email, or the first one.
func (u *User) PrimaryEmail() string {
	for _, e := range u.Emails {
		if e.Primary {
			return e.Value
		}
	}
	if len(u.Emails) > 0 {
		return u.Emails[0].Value
	}
	return ""
}

// SetSchemas fills Schemas from the extensions present.
func (u *User) SetSchemas() {
	u.Schemas = []string{SchemaUser}
	if u.Enterprise != nil {
		u.Schemas = append(u.Schemas, SchemaEnterpriseUser)
	}
	if u.Connect != nil {
		u.Schemas = append(u.Schemas, SchemaConnectUser)
	}
}

// Member is one value of a Group's "members".
type Member struct {
	Value   string `json:"value"`
	Ref     string `json:"$ref,omitempty"`
	Display string `json:"display,omitempty"`
	Type    string `json:"type,omitempty"`
}

// ConnectGroup is the Connect group extension: the group's kind.
type ConnectGroup struct {
	Kind string `json:"kind,omitempty"`
}

// Group is a SCIM Group with the Connect extension. Members is nil when the
// caller did not ask for members (they can be very many).
type Group struct {
	Schemas     []string      `json:"schemas,omitempty"`
	ID          string        `json:"id,omitempty"`
	ExternalID  string        `json:"externalId,omitempty"`
	DisplayName string        `json:"displayName"`
	Members     []Member      `json:"members,omitempty"`
	Connect     *ConnectGroup `json:"urn:ietf:params:scim:schemas:extension:connect:2.0:Group,omitempty"`
	Meta        *Meta         `json:"meta,omitempty"`
}

// Kind returns the group's Connect kind ("" when none).
func (g *Group) Kind() string {
	if g.Connect == nil {
		return ""
	}
	return g.Connect.Kind
}

// NormalizeKind checks the group's Connect kind and puts it in canonical form:
// a kind is matched case-insensitively (Entra and scripts send "Audience"), and
// stored lower-case because audience and course lookups match it exactly. An
// empty kind drops the extension. Any other value is 400 invalidValue: stored,
// it would make a group no lookup finds and dodge the per-kind uniqueness of
// displayName. Every write path (POST, PUT, PATCH) calls it.
func (g *Group) NormalizeKind() error {
	if g.Connect == nil {
		return nil
	}
	kind := strings.ToLower(strings.TrimSpace(g.Connect.Kind))
	switch kind {
	case "":
		g.Connect = nil
	case KindAudience, KindCourse:
		g.Connect.Kind = kind
	default:
		return BadRequest(ErrTypeInvalidValue, "kind must be %q or %q", KindAudience, KindCourse)
	}
	return nil
}

// SetSchemas fills Schemas from the extensions present.
func (g *Group) SetSchemas() {
	g.Schemas = []string{SchemaGroup}
	if g.Connect != nil {
		g.Schemas = append(g.Schemas, SchemaConnectGroup)
	}
}

// ListResponse is a SCIM list (RFC 7644 §3.4.2) with RFC 9865 cursor fields.
type ListResponse struct {
	Schemas      []string `json:"schemas"`
	TotalResults int      `json:"totalResults"`
	StartIndex   int      `json:"startIndex,omitempty"`
	ItemsPerPage int      `json:"itemsPerPage"`
	NextCursor   string   `json:"nextCursor,omitempty"`
	PrevCursor   string   `json:"previousCursor,omitempty"`
	Resources    []any    `json:"Resources"`
}

// Change is one record of the hub's change journal as served by the Changes feed
// (DESIGN.md §3.1).
type Change struct {
	Seq          int64     `json:"seq"`
	ResourceType string    `json:"resourceType"` // "User" | "Group"
	ID           string    `json:"id"`
	Op           string    `json:"op"`               // ChangeUpsert | ChangeRemove
	Reason       string    `json:"reason,omitempty"` // ReasonDeleted, ReasonOutOfScope, ...
	At           time.Time `json:"at"`
	Resource     any       `json:"resource,omitempty"`
}

// Change operations and reasons.
const (
	ChangeUpsert = "upsert"
	ChangeRemove = "remove"

	ReasonCreated    = "created"
	ReasonUpdated    = "updated"
	ReasonDeleted    = "deleted"
	ReasonSuspended  = "suspended"
	ReasonOutOfScope = "out_of_scope"
	ReasonMembers    = "members"
)
