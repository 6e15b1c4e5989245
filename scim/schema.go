package scim

import "strings"

// AttrType is a SCIM attribute data type (RFC 7643 §2.3).
type AttrType string

// Attribute data types.
const (
	TypeString    AttrType = "string"
	TypeBoolean   AttrType = "boolean"
	TypeDecimal   AttrType = "decimal"
	TypeInteger   AttrType = "integer"
	TypeDateTime  AttrType = "dateTime"
	TypeReference AttrType = "reference"
	TypeBinary    AttrType = "binary"
	TypeComplex   AttrType = "complex"
)

// Returned says when an attribute appears in a response (RFC 7643 §2.4).
type Returned string

// Returned values.
const (
	ReturnedAlways  Returned = "always"
	ReturnedNever   Returned = "never"
	ReturnedDefault Returned = "default"
	ReturnedRequest Returned = "request"
)

// Mutability values (RFC 7643 §2.2).
const (
	ReadOnly  = "readOnly"
	ReadWrite = "readWrite"
	Immutable = "immutable"
	WriteOnly = "writeOnly"
)

// Attribute describes one attribute of a schema. It is the single source of truth
// for validation, filter compilation, PATCH paths, projection and the /Schemas
// discovery document.
type Attribute struct {
	Name          string
	Type          AttrType
	MultiValued   bool
	Required      bool
	CaseExact     bool
	Mutability    string // ReadWrite when empty
	Returned      Returned
	Uniqueness    string // "none" when empty
	Description   string
	CanonicalVals []string
	SubAttributes []Attribute
}

// Sub returns the sub-attribute named name (case-insensitive).
func (a *Attribute) Sub(name string) (*Attribute, bool) {
	for i := range a.SubAttributes {
		if strings.EqualFold(a.SubAttributes[i].Name, name) {
			return &a.SubAttributes[i], true
		}
	}
	return nil, false
}

// Schema is a SCIM schema: an URN and its attributes.
type Schema struct {
	ID          string
	Name        string
	Description string
	Attributes  []Attribute
}

// Attr returns the top-level attribute named name (case-insensitive).
func (s *Schema) Attr(name string) (*Attribute, bool) {
	for i := range s.Attributes {
		if strings.EqualFold(s.Attributes[i].Name, name) {
			return &s.Attributes[i], true
		}
	}
	return nil, false
}

// ResourceType binds a core schema and its extensions to an endpoint.
type ResourceType struct {
	Name       string // "User"
	Endpoint   string // "/Users"
	Schema     *Schema
	Extensions []*Schema
}

// Common attributes present on every resource (RFC 7643 §3.1).
var commonAttributes = []Attribute{
	{Name: "id", Type: TypeString, CaseExact: true, Mutability: ReadOnly, Returned: ReturnedAlways, Uniqueness: "server"},
	{Name: "externalId", Type: TypeString, CaseExact: true},
	{Name: "meta", Type: TypeComplex, Mutability: ReadOnly, SubAttributes: []Attribute{
		{Name: "resourceType", Type: TypeString, CaseExact: true, Mutability: ReadOnly},
		{Name: "created", Type: TypeDateTime, Mutability: ReadOnly},
		{Name: "lastModified", Type: TypeDateTime, Mutability: ReadOnly},
		{Name: "location", Type: TypeReference, CaseExact: true, Mutability: ReadOnly},
		{Name: "version", Type: TypeString, CaseExact: true, Mutability: ReadOnly},
	}},
}

// CommonAttributes returns id, externalId and meta.
func CommonAttributes() []Attribute { return commonAttributes }

func multi(name string, canon ...string) Attribute {
	return Attribute{Name: name, Type: TypeComplex, MultiValued: true, SubAttributes: []Attribute{
		{Name: "value", Type: TypeString},
		{Name: "display", Type: TypeString},
		{Name: "type", Type: TypeString, CanonicalVals: canon},
		{Name: "primary", Type: TypeBoolean},
	}}
}

// UserSchema is the core User schema (RFC 7643 §4.1).
var UserSchema = &Schema{ID: SchemaUser, Name: "User", Description: "User Account", Attributes: []Attribute{
	{Name: "userName", Type: TypeString, Required: true, Uniqueness: "server"},
	{Name: "name", Type: TypeComplex, SubAttributes: []Attribute{
		{Name: "formatted", Type: TypeString},
		{Name: "familyName", Type: TypeString},
		{Name: "givenName", Type: TypeString},
		{Name: "middleName", Type: TypeString},
		{Name: "honorificPrefix", Type: TypeString},
		{Name: "honorificSuffix", Type: TypeString},
	}},
	{Name: "displayName", Type: TypeString},
	{Name: "nickName", Type: TypeString},
	{Name: "profileUrl", Type: TypeReference},
	{Name: "title", Type: TypeString},
	{Name: "userType", Type: TypeString},
	{Name: "preferredLanguage", Type: TypeString},
	{Name: "locale", Type: TypeString},
	{Name: "timezone", Type: TypeString},
	{Name: "active", Type: TypeBoolean},
	{Name: "password", Type: TypeString, Mutability: WriteOnly, Returned: ReturnedNever},
	multi("emails", "work", "home", "other"),
	multi("phoneNumbers", "work", "home", "mobile", "fax", "pager", "other"),
	multi("ims"),
	multi("photos", "photo", "thumbnail"),
	{Name: "addresses", Type: TypeComplex, MultiValued: true, SubAttributes: []Attribute{
		{Name: "formatted", Type: TypeString},
		{Name: "streetAddress", Type: TypeString},
		{Name: "locality", Type: TypeString},
		{Name: "region", Type: TypeString},
		{Name: "postalCode", Type: TypeString},
		{Name: "country", Type: TypeString},
		{Name: "type", Type: TypeString, CanonicalVals: []string{"work", "home", "other"}},
		{Name: "primary", Type: TypeBoolean},
	}},
	{Name: "groups", Type: TypeComplex, MultiValued: true, Mutability: ReadOnly, SubAttributes: []Attribute{
		{Name: "value", Type: TypeString, CaseExact: true, Mutability: ReadOnly},
		{Name: "$ref", Type: TypeReference, CaseExact: true, Mutability: ReadOnly},
		{Name: "display", Type: TypeString, Mutability: ReadOnly},
		{Name: "type", Type: TypeString, Mutability: ReadOnly, CanonicalVals: []string{"direct", "indirect"}},
	}},
	multi("entitlements"),
	multi("roles"),
	multi("x509Certificates"),
}}

// EnterpriseUserSchema is the enterprise User extension (RFC 7643 §4.3).
var EnterpriseUserSchema = &Schema{ID: SchemaEnterpriseUser, Name: "EnterpriseUser", Description: "Enterprise User", Attributes: []Attribute{
	{Name: "employeeNumber", Type: TypeString},
	{Name: "costCenter", Type: TypeString},
	{Name: "organization", Type: TypeString},
	{Name: "division", Type: TypeString},
	{Name: "department", Type: TypeString},
	{Name: "manager", Type: TypeComplex, SubAttributes: []Attribute{
		{Name: "value", Type: TypeString, CaseExact: true},
		{Name: "$ref", Type: TypeReference, CaseExact: true},
		{Name: "displayName", Type: TypeString, Mutability: ReadOnly},
	}},
}}

// ConnectUserSchema is the Connect User extension (DESIGN.md §3). passwordHash is
// returned only on request, and only to callers allowed to see it.
var ConnectUserSchema = &Schema{ID: SchemaConnectUser, Name: "ConnectUser", Description: "Connect User", Attributes: []Attribute{
	{Name: "interests", Type: TypeString, MultiValued: true},
	{Name: "customFields", Type: TypeComplex, MultiValued: true, SubAttributes: []Attribute{
		{Name: "name", Type: TypeString, Required: true},
		{Name: "value", Type: TypeString},
	}},
	{Name: "passwordHash", Type: TypeString, CaseExact: true, Returned: ReturnedRequest},
	{Name: "emailVerified", Type: TypeBoolean},
}}

// GroupSchema is the core Group schema (RFC 7643 §4.2).
var GroupSchema = &Schema{ID: SchemaGroup, Name: "Group", Description: "Group", Attributes: []Attribute{
	{Name: "displayName", Type: TypeString, Required: true},
	{Name: "members", Type: TypeComplex, MultiValued: true, SubAttributes: []Attribute{
		{Name: "value", Type: TypeString, CaseExact: true, Mutability: Immutable},
		{Name: "$ref", Type: TypeReference, CaseExact: true, Mutability: Immutable},
		{Name: "display", Type: TypeString, Mutability: ReadOnly},
		{Name: "type", Type: TypeString, Mutability: Immutable, CanonicalVals: []string{"User", "Group"}},
	}},
}}

// ConnectGroupSchema is the Connect Group extension: kind audience | course.
var ConnectGroupSchema = &Schema{ID: SchemaConnectGroup, Name: "ConnectGroup", Description: "Connect Group", Attributes: []Attribute{
	{Name: "kind", Type: TypeString, CanonicalVals: []string{KindAudience, KindCourse}},
}}

// UserResourceType and GroupResourceType are the hub's resource types.
var (
	UserResourceType  = &ResourceType{Name: "User", Endpoint: "/Users", Schema: UserSchema, Extensions: []*Schema{EnterpriseUserSchema, ConnectUserSchema}}
	GroupResourceType = &ResourceType{Name: "Group", Endpoint: "/Groups", Schema: GroupSchema, Extensions: []*Schema{ConnectGroupSchema}}
)

// AttrPath is a resolved attribute path: the schema it belongs to, the attribute and
// an optional sub-attribute. Its String form is canonical (schema-cased names,
// extension attributes prefixed with their URN).
type AttrPath struct {
	Schema *Schema
	Attr   *Attribute
	Sub    *Attribute // nil when the path names the attribute itself
}

// String returns the canonical path: "name.givenName",
// "urn:...:enterprise:2.0:User:employeeNumber".
func (p AttrPath) String() string {
	s := p.Attr.Name
	if p.Sub != nil {
		s += "." + p.Sub.Name
	}
	if p.Schema != nil && p.Schema.ID != "" && p.Schema.ID != SchemaUser && p.Schema.ID != SchemaGroup {
		s = p.Schema.ID + ":" + s
	}
	return s
}

// Target returns the attribute the path ends at.
func (p AttrPath) Target() *Attribute {
	if p.Sub != nil {
		return p.Sub
	}
	return p.Attr
}

// Resolve resolves uri ("" or a schema URN), attribute name and optional
// sub-attribute name against rt, case-insensitively. Common attributes (id,
// externalId, meta) resolve with Schema == nil. It returns false when the path
// names no attribute of rt.
func (rt *ResourceType) Resolve(uri, attr, sub string) (AttrPath, bool) {
	var p AttrPath
	found := false
	if uri == "" {
		for i := range commonAttributes {
			if strings.EqualFold(commonAttributes[i].Name, attr) {
				p = AttrPath{Attr: &commonAttributes[i]}
				found = true
				break
			}
		}
	}
	if !found {
		for _, s := range append([]*Schema{rt.Schema}, rt.Extensions...) {
			if uri != "" && !strings.EqualFold(uri, s.ID) {
				continue
			}
			if a, ok := s.Attr(attr); ok {
				p = AttrPath{Schema: s, Attr: a}
				found = true
				break
			}
		}
	}
	if !found {
		return AttrPath{}, false
	}
	if sub != "" {
		sa, ok := p.Attr.Sub(sub)
		if !ok {
			return AttrPath{}, false
		}
		p.Sub = sa
	}
	return p, true
}

// SplitURN splits "urn:...:User:name.givenName" into the URN and the rest when the
// path starts with one of rt's schema URNs (case-insensitive).
func (rt *ResourceType) SplitURN(path string) (uri, rest string) {
	for _, s := range append([]*Schema{rt.Schema}, rt.Extensions...) {
		if len(path) > len(s.ID) && strings.EqualFold(path[:len(s.ID)], s.ID) && path[len(s.ID)] == ':' {
			return s.ID, path[len(s.ID)+1:]
		}
	}
	return "", path
}

// ParsePath resolves a dotted path such as "name.givenName" or
// "urn:...:enterprise:2.0:User:manager.value".
func (rt *ResourceType) ParsePath(path string) (AttrPath, bool) {
	uri, rest := rt.SplitURN(path)
	if uri != "" && rest == "" {
		return AttrPath{}, false
	}
	attr, sub, _ := strings.Cut(rest, ".")
	return rt.Resolve(uri, attr, sub)
}
