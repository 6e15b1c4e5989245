package scimtarget

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// Reserved custom field names that carry the bridge's own account metadata in
// the Connect user extension (Config.Metadata). A caller's custom field may not
// use the prefix.
const (
	metaPrefix      = "connect:"
	metaSuspended   = metaPrefix + "suspended"
	metaSuspendedBy = metaPrefix + "suspendedBy"
	metaDeleted     = metaPrefix + "deleted"
	metaPrivileged  = metaPrefix + "privileged"
)

// deletedLayout is fixed-width so that the target compares times as strings.
const deletedLayout = "2006-01-02T15:04:05.000000Z"

// userKey is a connect account's externalId on the target: the server id and
// the hub user id, each query-escaped (so neither contains ':'), joined by ':'.
func userKey(server, hubUserID string) string {
	return url.QueryEscape(server) + ":" + url.QueryEscape(hubUserID)
}

// parseUserKey reads an externalId written by userKey; ok is false for any
// other value (an externalId the site application set itself).
func parseUserKey(ext string) (server, hub string, ok bool) {
	a, b, found := strings.Cut(ext, ":")
	if !found || a == "" || b == "" || strings.Contains(b, ":") {
		return "", "", false
	}
	server, err1 := url.QueryUnescape(a)
	hub, err2 := url.QueryUnescape(b)
	if err1 != nil || err2 != nil || userKey(server, hub) != ext {
		return "", "", false
	}
	return server, hub, true
}

// Group externalIds: server:hubGroupId:locked|open, each part query-escaped.
// Unlocked site groups have none.
const (
	groupLocked = "locked"
	groupOpen   = "open"
)

func groupKey(server, hub string, locked bool) string {
	flag := groupOpen
	if locked {
		flag = groupLocked
	}
	return url.QueryEscape(server) + ":" + url.QueryEscape(hub) + ":" + flag
}

func parseGroupKey(ext string) (server, hub string, locked, ok bool) {
	parts := strings.Split(ext, ":")
	if len(parts) != 3 || (parts[2] != groupLocked && parts[2] != groupOpen) {
		return "", "", false, false
	}
	server, err1 := url.QueryUnescape(parts[0])
	hub, err2 := url.QueryUnescape(parts[1])
	if err1 != nil || err2 != nil || (server == "") != (hub == "") {
		return "", "", false, false
	}
	locked = parts[2] == groupLocked
	if groupKey(server, hub, locked) != ext {
		return "", "", false, false
	}
	return server, hub, locked, true
}

// userResource is the SCIM user written for a.
func (t *Target) userResource(a local.Account) scim.User {
	u := scim.User{
		UserName:          a.Username,
		DisplayName:       a.DisplayName,
		Title:             a.Title,
		PreferredLanguage: a.Language,
		Timezone:          a.Timezone,
		Active:            scim.BoolPtr(!a.Suspended && !a.IsDeleted()),
	}
	if a.Auth == local.AuthConnect {
		u.ExternalID = userKey(a.Server, a.HubUserID)
	}
	if a.GivenName != "" || a.FamilyName != "" {
		u.Name = &scim.Name{GivenName: a.GivenName, FamilyName: a.FamilyName}
	}
	if a.Email != "" {
		u.Emails = []scim.MultiValue{{Value: a.Email, Type: "work", Primary: true}}
	}
	if a.City != "" || a.Country != "" {
		u.Addresses = []scim.Address{{Type: "work", Locality: a.City, Country: a.Country, Primary: true}}
	}
	if a.Phone != "" {
		u.PhoneNumbers = []scim.MultiValue{{Value: a.Phone, Type: "work", Primary: true}}
	}
	if a.IDNumber != "" || a.Organization != "" || a.Department != "" {
		u.Enterprise = &scim.EnterpriseUser{EmployeeNumber: a.IDNumber, Organization: a.Organization, Department: a.Department}
	}
	if t.cfg.Extension {
		c := &scim.ConnectUser{EmailVerified: scim.BoolPtr(a.EmailVerified), Interests: a.Interests}
		for _, f := range a.CustomFields {
			c.CustomFields = append(c.CustomFields, scim.CustomField{Name: f.Name, Value: f.Value})
		}
		c.CustomFields = append(c.CustomFields, t.metaFields(a)...)
		if t.cfg.PasswordHashes {
			c.PasswordHash = a.PasswordHash
		}
		u.Connect = c
	}
	u.SetSchemas()
	return u
}

// metaFields are the reserved custom fields that carry a's metadata
// (Config.Metadata; none without it).
func (t *Target) metaFields(a local.Account) []scim.CustomField {
	if !t.cfg.Metadata {
		return nil
	}
	var out []scim.CustomField
	add := func(name, value string) { out = append(out, scim.CustomField{Name: name, Value: value}) }
	if a.Suspended {
		add(metaSuspended, "1")
		if a.SuspendedBy != "" {
			add(metaSuspendedBy, a.SuspendedBy)
		}
	}
	if a.IsDeleted() {
		add(metaDeleted, a.Deleted.UTC().Format(deletedLayout))
	}
	if a.Privileged {
		add(metaPrivileged, "1")
	}
	return out
}

// checkStorable refuses what this target cannot hold.
func (t *Target) checkStorable(a local.Account) error {
	for _, f := range a.CustomFields {
		if strings.HasPrefix(f.Name, metaPrefix) {
			return fmt.Errorf("custom field %q: the %q prefix is reserved: %w", f.Name, metaPrefix, local.ErrInvalid)
		}
	}
	return nil
}

// account reads a SCIM user back into an account.
func (t *Target) account(u scim.User) local.Account {
	a := local.Account{
		ID:          u.ID,
		Username:    u.UserName,
		Auth:        local.AuthManual,
		DisplayName: u.DisplayName,
		Title:       u.Title,
		Language:    u.PreferredLanguage,
		Timezone:    u.Timezone,
		Email:       u.PrimaryEmail(),
		Suspended:   !u.IsActive(),
	}
	if server, hub, ok := parseUserKey(u.ExternalID); ok {
		a.Auth, a.Server, a.HubUserID = local.AuthConnect, server, hub
	}
	if u.Name != nil {
		a.GivenName, a.FamilyName = u.Name.GivenName, u.Name.FamilyName
	}
	if ad := pickAddress(u.Addresses); ad != nil {
		a.City, a.Country = ad.Locality, ad.Country
	}
	if len(u.PhoneNumbers) > 0 {
		a.Phone = u.PhoneNumbers[0].Value
		for _, p := range u.PhoneNumbers {
			if p.Primary {
				a.Phone = p.Value
				break
			}
		}
	}
	if e := u.Enterprise; e != nil {
		a.IDNumber, a.Organization, a.Department = e.EmployeeNumber, e.Organization, e.Department
	}
	if c := u.Connect; c != nil && t.cfg.Extension {
		a.EmailVerified = c.EmailVerified != nil && bool(*c.EmailVerified)
		a.Interests = c.Interests
		suspendedMeta := false
		for _, f := range c.CustomFields {
			if !strings.HasPrefix(f.Name, metaPrefix) {
				a.CustomFields = append(a.CustomFields, local.CustomField{Name: f.Name, Value: f.Value})
				continue
			}
			if !t.cfg.Metadata {
				continue
			}
			switch f.Name {
			case metaSuspended:
				suspendedMeta = f.Value == "1"
			case metaSuspendedBy:
				a.SuspendedBy = f.Value
			case metaDeleted:
				if at, err := time.Parse(deletedLayout, f.Value); err == nil {
					a.Deleted = at
				}
			case metaPrivileged:
				a.Privileged = f.Value == "1"
			}
		}
		if t.cfg.Metadata {
			// A soft-deleted account is inactive without being suspended; an
			// inactive account without metadata was suspended by the site
			// application itself.
			a.Suspended = suspendedMeta || (!u.IsActive() && !a.IsDeleted())
		}
		if t.cfg.PasswordHashes {
			a.PasswordHash = c.PasswordHash
		}
	}
	if u.Meta != nil {
		a.Created, a.Modified = u.Meta.Created, u.Meta.LastModified
	}
	return local.Normalize(a)
}

// pickAddress returns the address the mapping reads: the work address, else
// the first; nil without addresses.
func pickAddress(as []scim.Address) *scim.Address {
	if i := pickAddressIndex(as); i >= 0 {
		return &as[i]
	}
	return nil
}

func pickAddressIndex(as []scim.Address) int {
	for i := range as {
		if strings.EqualFold(as[i].Type, "work") {
			return i
		}
	}
	if len(as) > 0 {
		return 0
	}
	return -1
}

// view is how a lands on the target and reads back: the fields the target
// cannot hold are lost exactly as a write and a read would lose them. Comparing
// views keeps a repeated put unchanged on any target.
func (t *Target) view(a local.Account) local.Account {
	id, created, modified := a.ID, a.Created, a.Modified
	v := t.account(t.userResource(local.Normalize(a)))
	v.ID, v.Created, v.Modified = id, created, modified
	return v
}

func (t *Target) groupResource(g local.Group) scim.Group {
	out := scim.Group{DisplayName: g.Name}
	if g.Server != "" || g.Locked {
		out.ExternalID = groupKey(g.Server, g.HubGroupID, g.Locked)
	}
	if g.Kind == local.KindAudience || g.Kind == local.KindCourse {
		out.Connect = &scim.ConnectGroup{Kind: string(g.Kind)}
	}
	out.SetSchemas()
	return out
}

func (t *Target) group(sg scim.Group) local.Group {
	g := local.Group{ID: sg.ID, Name: sg.DisplayName, Kind: local.KindLocal}
	switch k := local.Kind(sg.Kind()); k {
	case local.KindAudience, local.KindCourse:
		g.Kind = k
	}
	if server, hub, locked, ok := parseGroupKey(sg.ExternalID); ok {
		g.Server, g.HubGroupID, g.Locked = server, hub, locked
	}
	if sg.Meta != nil {
		g.Created, g.Modified = sg.Meta.Created.UTC(), sg.Meta.LastModified.UTC()
	}
	return g
}
