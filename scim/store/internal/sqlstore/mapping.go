package sqlstore

import (
	"strings"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
)

// mapping implements filter.Mapping for one resource type: every filterable
// attribute maps to a column of the resource's row or to a frame of child rows.
// Keys are the lower-case canonical path (scim.AttrPath.String()).
type mapping struct {
	cols   map[string]string
	multis map[string]filter.MultiFrame
	// sortMulti holds, per sortable multi-valued attribute, how to pick the
	// value a resource sorts by (RFC 7644 §3.4.2.3: its primary, else first,
	// value).
	sortMulti map[string]multiSort
}

// multiSort is the correlated subquery that sorts a resource by one of its
// multi-valued attributes: "SELECT <col> <from> <order> LIMIT 1".
type multiSort struct {
	from  string // FROM and the WHERE correlating the child rows with the resource
	order string // ORDER BY putting the primary value, else the first as listed, first
	// cols maps the lower-case sub-attributes that can be sorted by to their
	// columns; a sub-attribute not here (a constant type, a computed $ref)
	// cannot be.
	cols map[string]string
}

var _ filter.Mapping = (*mapping)(nil)

// Column implements filter.Mapping.
func (m *mapping) Column(p scim.AttrPath) (string, bool) {
	if p.Attr == nil {
		return "", false
	}
	c, ok := m.cols[strings.ToLower(p.String())]
	return c, ok
}

// Multi implements filter.Mapping. The sub-attribute of p, if any, is ignored:
// the frame covers the whole multi-valued attribute.
func (m *mapping) Multi(p scim.AttrPath) (filter.MultiFrame, bool) {
	if p.Attr == nil {
		return filter.MultiFrame{}, false
	}
	f, ok := m.multis[strings.ToLower(attrPath(p.Schema, p.Attr, nil).String())]
	return f, ok
}

// attrPath builds a path.
func attrPath(s *scim.Schema, a, sub *scim.Attribute) scim.AttrPath {
	return scim.AttrPath{Schema: s, Attr: a, Sub: sub}
}

// valueAttrs are the multi-valued User attributes kept in user_values, keyed
// by the attr column's value.
var valueAttrs = []struct {
	schema *scim.Schema
	name   string
}{
	{scim.UserSchema, "emails"},
	{scim.UserSchema, "phoneNumbers"},
	{scim.UserSchema, "ims"},
	{scim.UserSchema, "photos"},
	{scim.UserSchema, "addresses"},
	{scim.UserSchema, "entitlements"},
	{scim.UserSchema, "roles"},
	{scim.UserSchema, "x509Certificates"},
	{scim.ConnectUserSchema, "interests"},
	{scim.ConnectUserSchema, "customFields"},
}

// valueColumns maps lower-case sub-attribute names to user_values columns.
var valueColumns = map[string]string{
	"value":         "v.value",
	"display":       "v.display",
	"type":          "v.type",
	"primary":       "v.prim",
	"formatted":     "v.formatted",
	"streetaddress": "v.street_address",
	"locality":      "v.locality",
	"region":        "v.region",
	"postalcode":    "v.postal_code",
	"country":       "v.country",
	"name":          "v.name",
}

func userMapping() *mapping {
	rt := scim.UserResourceType
	m := &mapping{cols: map[string]string{}, multis: map[string]filter.MultiFrame{}, sortMulti: map[string]multiSort{}}
	col := func(path, column string) {
		p, ok := rt.ParsePath(path)
		if !ok {
			panic("sqlstore: unknown user attribute " + path)
		}
		m.cols[strings.ToLower(p.String())] = column
	}
	col("id", "u.id")
	col("externalId", "u.external_id")
	col("meta.created", "u.created")
	col("meta.lastModified", "u.modified")
	col("meta.resourceType", "'User'")
	col("userName", "u.user_name")
	col("displayName", "u.display_name")
	col("nickName", "u.nick_name")
	col("profileUrl", "u.profile_url")
	col("title", "u.title")
	col("userType", "u.user_type")
	col("preferredLanguage", "u.preferred_language")
	col("locale", "u.locale")
	col("timezone", "u.timezone")
	col("active", "u.active")
	col("name.formatted", "u.formatted_name")
	col("name.familyName", "u.family_name")
	col("name.givenName", "u.given_name")
	col("name.middleName", "u.middle_name")
	col("name.honorificPrefix", "u.honorific_prefix")
	col("name.honorificSuffix", "u.honorific_suffix")
	ent := scim.SchemaEnterpriseUser + ":"
	col(ent+"employeeNumber", "u.employee_number")
	col(ent+"costCenter", "u.cost_center")
	col(ent+"organization", "u.organization")
	col(ent+"division", "u.division")
	col(ent+"department", "u.department")
	col(ent+"manager.value", "u.manager_value")
	col(ent+"manager.displayName", "u.manager_display")
	col(scim.SchemaConnectUser+":emailVerified", "u.email_verified")

	for _, va := range valueAttrs {
		a, ok := va.schema.Attr(va.name)
		if !ok {
			panic("sqlstore: unknown user attribute " + va.name)
		}
		cols := map[string]string{}
		def := ""
		if len(a.SubAttributes) == 0 {
			cols["value"] = "v.value" // multi-valued simple attribute (interests)
			def = "value"
		}
		for _, sub := range a.SubAttributes {
			c, ok := valueColumns[strings.ToLower(sub.Name)]
			if !ok {
				panic("sqlstore: no column for " + va.name + "." + sub.Name)
			}
			cols[strings.ToLower(sub.Name)] = c
			if strings.EqualFold(sub.Name, "value") {
				def = "value"
			}
		}
		key := strings.ToLower(attrPath(va.schema, a, nil).String())
		m.multis[key] = filter.MultiFrame{
			From:    "user_values v",
			Where:   "v.attr = '" + va.name + "'",
			Columns: cols,
			Default: def,
			Key:     "u.pk",
			Ref:     "v.user_pk",
		}
		m.sortMulti[key] = multiSort{
			from:  "FROM user_values v WHERE v.user_pk = u.pk AND v.attr = '" + va.name + "'",
			order: "ORDER BY v.prim DESC, v.idx",
			cols:  cols,
		}
	}
	groups, _ := scim.UserSchema.Attr("groups")
	key := strings.ToLower(attrPath(scim.UserSchema, groups, nil).String())
	// A user's groups are listed in group creation order and have no primary.
	m.sortMulti[key] = multiSort{
		from:  "FROM group_members gm JOIN groups gg ON gg.pk = gm.group_pk WHERE gm.member_id = u.id",
		order: "ORDER BY gg.pk",
		cols:  map[string]string{"value": "gg.id", "display": "gg.display_name"},
	}
	m.multis[key] = filter.MultiFrame{
		From: "group_members gm JOIN groups gg ON gg.pk = gm.group_pk",
		Key:  "u.id",
		Ref:  "gm.member_id",
		Columns: map[string]string{
			"value":   "gg.id",
			"display": "gg.display_name",
			"type":    "'direct'",
		},
		Default: "value",
	}
	return m
}

func groupMapping() *mapping {
	rt := scim.GroupResourceType
	m := &mapping{cols: map[string]string{}, multis: map[string]filter.MultiFrame{}, sortMulti: map[string]multiSort{}}
	col := func(path, column string) {
		p, ok := rt.ParsePath(path)
		if !ok {
			panic("sqlstore: unknown group attribute " + path)
		}
		m.cols[strings.ToLower(p.String())] = column
	}
	col("id", "g.id")
	col("externalId", "g.external_id")
	col("meta.created", "g.created")
	col("meta.lastModified", "g.modified")
	col("meta.resourceType", "'Group'")
	col("displayName", "g.display_name")
	col(scim.SchemaConnectGroup+":kind", "g.kind")
	members, _ := scim.GroupSchema.Attr("members")
	key := strings.ToLower(attrPath(scim.GroupSchema, members, nil).String())
	// Members are listed by value and have no primary; display is computed as
	// groupMembers computes it.
	m.sortMulti[key] = multiSort{
		from: `FROM group_members gm
LEFT JOIN users mu ON gm.member_type = 'User' AND mu.id = gm.member_id
LEFT JOIN groups mg ON gm.member_type = 'Group' AND mg.id = gm.member_id
WHERE gm.group_pk = g.pk`,
		order: "ORDER BY gm.member_id",
		cols: map[string]string{
			"value":   "gm.member_id",
			"type":    "gm.member_type",
			"display": "COALESCE(mu.display_name, mu.user_name, mg.display_name, '')",
		},
	}
	m.multis[key] = filter.MultiFrame{
		From: "group_members gm",
		Key:  "g.pk",
		Ref:  "gm.group_pk",
		Columns: map[string]string{
			"value": "gm.member_id",
			"type":  "gm.member_type",
		},
		Default: "value",
	}
	return m
}
