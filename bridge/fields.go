package bridge

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// Attribute is one hub attribute the engine can copy, with the local fields it
// writes (none for attributes the local directory has no field for).
type Attribute struct {
	Key    string // the key used in the exclusions setting
	SCIM   string // the SCIM attribute path it reads
	Fields local.Fields
}

// Attributes is the table of copyable attributes (DESIGN.md §3).
var Attributes = []Attribute{
	{"userName", "userName", local.FieldUsername},
	{"givenName", "name.givenName", local.FieldGivenName},
	{"familyName", "name.familyName", local.FieldFamilyName},
	{"displayName", "displayName", local.FieldDisplayName},
	{"email", `emails[primary eq true].value`, local.FieldEmail},
	{"emailVerified", scim.SchemaConnectUser + ":emailVerified", local.FieldEmailVerified},
	{"active", "active", local.FieldSuspended},
	{"preferredLanguage", "preferredLanguage", local.FieldLanguage},
	{"timezone", "timezone", local.FieldTimezone},
	{"city", `addresses[type eq "work"].locality`, local.FieldCity},
	{"country", `addresses[type eq "work"].country`, local.FieldCountry},
	{"phone", "phoneNumbers[primary eq true].value", local.FieldPhone},
	{"employeeNumber", scim.SchemaEnterpriseUser + ":employeeNumber", local.FieldIDNumber},
	{"title", "title", local.FieldTitle},
	{"organization", scim.SchemaEnterpriseUser + ":organization", local.FieldOrganization},
	{"department", scim.SchemaEnterpriseUser + ":department", local.FieldDepartment},
	{"division", scim.SchemaEnterpriseUser + ":division", 0},
	{"manager", scim.SchemaEnterpriseUser + ":manager", 0},
	{"interests", scim.SchemaConnectUser + ":interests", local.FieldInterests},
	{"customFields", scim.SchemaConnectUser + ":customFields", local.FieldCustomFields},
	{"passwordHash", scim.SchemaConnectUser + ":passwordHash", local.FieldPasswordHash},
}

// attrAliases maps other spellings (SCIM paths, URN forms) to keys.
var attrAliases = map[string][]string{
	"username":            {"userName"},
	"name":                {"givenName", "familyName"},
	"name.givenname":      {"givenName"},
	"name.familyname":     {"familyName"},
	"emails":              {"email"},
	"emails.value":        {"email"},
	"addresses":           {"city", "country"},
	"addresses.locality":  {"city"},
	"addresses.country":   {"country"},
	"phonenumbers":        {"phone"},
	"phonenumbers.value":  {"phone"},
	"language":            {"preferredLanguage"},
	"idnumber":            {"employeeNumber"},
	"position":            {"title"},
	"custom":              {"customFields"},
	"customprofilefields": {"customFields"},
	"password":            {"passwordHash"},
}

// resolveAttr returns the keys an exclusion entry names.
func resolveAttr(s string) ([]string, bool) {
	s = strings.TrimSpace(s)
	low := strings.ToLower(s)
	for _, urn := range []string{scim.SchemaEnterpriseUser, scim.SchemaConnectUser, scim.SchemaUser} {
		if rest, ok := strings.CutPrefix(low, strings.ToLower(urn)+":"); ok {
			low = rest
		}
	}
	for _, a := range Attributes {
		if strings.EqualFold(a.Key, low) {
			return []string{a.Key}, true
		}
	}
	if keys, ok := attrAliases[low]; ok {
		return keys, true
	}
	return nil, false
}

// ParseExclusions parses the exclusions setting: a comma-separated list of
// attribute keys (or their SCIM paths), "default" for DefaultExclusions (which
// may be combined: "default,email"), or "none". Attributes the local
// directory has no field for (division, manager) are always in the result:
// leaving them out could only mislead an operator into expecting them copied.
func ParseExclusions(v string) ([]string, error) {
	seen := map[string]bool{}
	for _, a := range Attributes {
		if a.Fields == 0 {
			seen[a.Key] = true
		}
	}
	var bad []string
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		switch strings.ToLower(part) {
		case "", "none":
			continue
		case "default":
			for _, k := range DefaultExclusions {
				seen[k] = true
			}
			continue
		}
		keys, ok := resolveAttr(part)
		if !ok {
			bad = append(bad, part)
			continue
		}
		for _, k := range keys {
			seen[k] = true
		}
	}
	if len(bad) > 0 {
		var known []string
		for _, a := range Attributes {
			known = append(known, a.Key)
		}
		return nil, fmt.Errorf("unknown attributes %s (known: %s)", strings.Join(bad, ", "), strings.Join(known, ", "))
	}
	out := make([]string, 0, len(seen))
	for _, a := range Attributes { // table order
		if seen[a.Key] {
			out = append(out, a.Key)
		}
	}
	return out, nil
}

// profile is what the engine writes of one hub user: the local values and the
// mask of fields it owns (exclusions removed). Status (suspended, deleted) and
// the account's key are decided by the planner.
type profile struct {
	acct local.Account
	mask local.Fields
	// copyUserName: userName is not excluded, so the local username follows it.
	copyUserName bool
	// syncActive: "active" is not excluded.
	syncActive bool
	hash       string
}

// profileFields are the fields a profile can own.
const profileFields = local.FieldEmail | local.FieldEmailVerified | local.FieldGivenName |
	local.FieldFamilyName | local.FieldDisplayName | local.FieldIDNumber | local.FieldLanguage |
	local.FieldTimezone | local.FieldCity | local.FieldCountry | local.FieldPhone | local.FieldTitle |
	local.FieldOrganization | local.FieldDepartment | local.FieldInterests | local.FieldCustomFields |
	local.FieldPasswordHash

// excludedMask returns the local fields the exclusions keep.
func excludedMask(exclusions []string) local.Fields {
	var m local.Fields
	for _, k := range exclusions {
		for _, a := range Attributes {
			if a.Key == k {
				m |= a.Fields
			}
		}
	}
	return m
}

func excluded(exclusions []string, key string) bool { return slices.Contains(exclusions, key) }

// workAddress returns the work address, else the primary, else the first.
func workAddress(u *scim.User) *scim.Address {
	for i := range u.Addresses {
		if strings.EqualFold(u.Addresses[i].Type, "work") {
			return &u.Addresses[i]
		}
	}
	for i := range u.Addresses {
		if u.Addresses[i].Primary {
			return &u.Addresses[i]
		}
	}
	if len(u.Addresses) > 0 {
		return &u.Addresses[0]
	}
	return nil
}

func primaryValue(vs []scim.MultiValue) string {
	for _, v := range vs {
		if v.Primary {
			return v.Value
		}
	}
	if len(vs) > 0 {
		return vs[0].Value
	}
	return ""
}

// clip keeps a value within the local directory's field limit (on a rune
// boundary) so that one over-long hub value cannot block an account.
func clip(s string) string {
	if len(s) <= local.MaxFieldLen {
		return s
	}
	s = s[:local.MaxFieldLen]
	for len(s) > 0 && !utf8Start(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// storable returns the fields a target stores (every field when it does not
// say).
func storable(t Target) local.Fields {
	if f := t.Capabilities().Fields; f != 0 {
		return f
	}
	return local.AllFields
}

// makeProfile converts a hub user under the exclusions, writing only fields the
// target stores (a field it cannot keep would look changed on every run).
func makeProfile(u *scim.User, exclusions []string, stored local.Fields) profile {
	var a local.Account
	if u.Name != nil {
		a.GivenName, a.FamilyName = clip(u.Name.GivenName), clip(u.Name.FamilyName)
	}
	a.DisplayName = clip(u.DisplayName)
	a.Email = clip(u.PrimaryEmail())
	a.Language = clip(u.PreferredLanguage)
	if a.Language == "" {
		a.Language = clip(u.Locale)
	}
	a.Timezone = clip(u.Timezone)
	if ad := workAddress(u); ad != nil {
		a.City, a.Country = clip(ad.Locality), clip(ad.Country)
	}
	a.Phone = clip(primaryValue(u.PhoneNumbers))
	a.Title = clip(u.Title)
	if e := u.Enterprise; e != nil {
		a.IDNumber, a.Organization, a.Department = clip(e.EmployeeNumber), clip(e.Organization), clip(e.Department)
	}
	if c := u.Connect; c != nil {
		for _, s := range c.Interests {
			a.Interests = append(a.Interests, clip(s))
		}
		for _, f := range c.CustomFields {
			if f.Name != "" {
				a.CustomFields = append(a.CustomFields, local.CustomField{Name: clip(f.Name), Value: clip(f.Value)})
			}
		}
		a.EmailVerified = c.EmailVerified != nil && bool(*c.EmailVerified)
		a.PasswordHash = c.PasswordHash
	}
	if len(a.PasswordHash) > local.MaxFieldLen {
		a.PasswordHash = ""
	}
	a = local.Normalize(a)

	mask := profileFields &^ excludedMask(exclusions) & stored
	if a.PasswordHash == "" {
		// Hashes come only while the hub's sync-password-hashes is on; a user
		// without one keeps the local hash it has.
		mask &^= local.FieldPasswordHash
	}
	// Excluded values are not even carried: a create writes every field it is
	// given, and the site keeps its own values for excluded ones.
	a = local.Merge(local.Account{}, a, mask)
	p := profile{acct: a, mask: mask,
		copyUserName: !excluded(exclusions, "userName"),
		syncActive:   !excluded(exclusions, "active")}
	if p.copyUserName {
		a.Username = u.UserName
		p.acct.Username = u.UserName
	}
	p.hash = contentHash(a, mask, p.copyUserName, p.syncActive, u.IsActive())
	return p
}

// contentHash fingerprints what a profile would write, so an unchanged hub user
// is skipped without reading the local account. Fields are written with
// separators (no JSON: this runs for every listed user).
func contentHash(a local.Account, mask local.Fields, copyUserName, syncActive, active bool) string {
	h := sha256.New()
	var buf []byte
	str := func(v string) {
		buf = strconv.AppendInt(buf[:0], int64(len(v)), 10)
		buf = append(buf, ':')
		buf = append(buf, v...)
		h.Write(buf)
	}
	for _, v := range []string{a.Username, a.Email, a.GivenName, a.FamilyName, a.DisplayName, a.IDNumber,
		a.Language, a.Timezone, a.City, a.Country, a.Phone, a.Title, a.Organization, a.Department, a.PasswordHash} {
		str(v)
	}
	str(strconv.Itoa(len(a.Interests)))
	for _, v := range a.Interests {
		str(v)
	}
	str(strconv.Itoa(len(a.CustomFields)))
	for _, c := range a.CustomFields {
		str(c.Name)
		str(c.Value)
	}
	str(strconv.FormatUint(uint64(mask), 16))
	str(fmt.Sprint(a.EmailVerified, copyUserName, syncActive, active))
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// changedFields returns the fields of mask on which cur differs from want.
func changedFields(cur, want local.Account, mask local.Fields) local.Fields {
	var ch local.Fields
	for f := local.Fields(1); f <= local.AllFields; f <<= 1 {
		if !mask.Has(f) {
			continue
		}
		merged := local.Merge(cur, want, f)
		if !local.SameContent(merged, local.Normalize(cur)) {
			ch |= f
		}
	}
	return ch
}

// fieldNames names the fields of m, for plans and `why`.
func fieldNames(m local.Fields) []string {
	names := map[local.Fields]string{
		local.FieldUsername: "username", local.FieldAuth: "auth", local.FieldEmail: "email",
		local.FieldEmailVerified: "emailVerified", local.FieldGivenName: "givenName",
		local.FieldFamilyName: "familyName", local.FieldDisplayName: "displayName",
		local.FieldIDNumber: "idNumber", local.FieldLanguage: "language", local.FieldTimezone: "timezone",
		local.FieldCity: "city", local.FieldCountry: "country", local.FieldPhone: "phone",
		local.FieldTitle: "title", local.FieldOrganization: "organization", local.FieldDepartment: "department",
		local.FieldInterests: "interests", local.FieldCustomFields: "customFields",
		local.FieldPasswordHash: "passwordHash", local.FieldPrivileged: "privileged",
		local.FieldSuspended: "suspended", local.FieldDeleted: "deleted",
	}
	var out []string
	for f := local.Fields(1); f <= local.AllFields; f <<= 1 {
		if m.Has(f) {
			if n, ok := names[f]; ok {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// GeneratedUsername is the local username of a hub user: "tc" and 13 base32
// characters of SHA-256(server, hub user id). It is stable (the same hub user
// of the same server always gets the same name, so a retried create finds its
// account) and unique per (server, hub user) with overwhelming probability;
// attempt > 0 appends a suffix for the astronomically rare clash with an
// existing account.
func GeneratedUsername(server, hubUserID string, attempt int) string {
	sum := sha256.Sum256([]byte(server + "\x00" + hubUserID))
	name := "tc" + strings.ToLower(b32.EncodeToString(sum[:8]))
	if attempt > 0 {
		name += "-" + strconv.Itoa(attempt+1)
	}
	return name
}
