package local

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// FoldKey is the case-insensitive key of a username or email: what every backend
// compares and indexes.
func FoldKey(s string) string { return strings.ToLower(s) }

// Normalize returns a in the form every backend stores: times in UTC truncated to
// the microsecond, SuspendedBy cleared while not suspended, empty slices nil.
func Normalize(a Account) Account {
	if !a.Suspended {
		a.SuspendedBy = ""
	}
	a.Deleted = normTime(a.Deleted)
	a.Created = normTime(a.Created)
	a.Modified = normTime(a.Modified)
	if len(a.Interests) == 0 {
		a.Interests = nil
	}
	if len(a.CustomFields) == 0 {
		a.CustomFields = nil
	}
	return a
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrInvalid)...)
}

func checkString(what, s string, max int) error {
	if len(s) > max {
		return invalid("%s longer than %d bytes", what, max)
	}
	if !utf8.ValidString(s) {
		return invalid("%s is not UTF-8", what)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return invalid("%s has a control character", what)
	}
	return nil
}

// CheckUsername returns ErrInvalid unless u is a valid username: non-empty, at most
// MaxUsernameLen bytes of UTF-8, no control characters, no leading or trailing
// space.
func CheckUsername(u string) error {
	if u == "" {
		return invalid("empty username")
	}
	if strings.TrimSpace(u) != u {
		return invalid("username %q has leading or trailing space", u)
	}
	return checkString("username", u, MaxUsernameLen)
}

// CheckAccount returns ErrInvalid (wrapped, naming the first problem) unless a may
// be stored: a valid username and auth, Server and HubUserID both set for a
// connect account and both empty for a manual one, SuspendedBy "" or
// SuspendedByConnect, and every string within MaxFieldLen.
func CheckAccount(a Account) error {
	if err := CheckUsername(a.Username); err != nil {
		return err
	}
	switch a.Auth {
	case AuthConnect:
		if a.Server == "" || a.HubUserID == "" {
			return invalid("connect account %q without server or hub user id", a.Username)
		}
	case AuthManual:
		if a.Server != "" || a.HubUserID != "" {
			return invalid("manual account %q with a server or hub user id", a.Username)
		}
	default:
		return invalid("auth %q", a.Auth)
	}
	if a.SuspendedBy != "" && a.SuspendedBy != SuspendedByConnect {
		return invalid("suspendedBy %q", a.SuspendedBy)
	}
	for _, f := range []struct{ what, v string }{
		{"server", a.Server}, {"hubUserId", a.HubUserID}, {"email", a.Email},
		{"givenName", a.GivenName}, {"familyName", a.FamilyName}, {"displayName", a.DisplayName},
		{"idNumber", a.IDNumber}, {"language", a.Language}, {"timezone", a.Timezone},
		{"city", a.City}, {"country", a.Country}, {"phone", a.Phone}, {"title", a.Title},
		{"organization", a.Organization}, {"department", a.Department}, {"passwordHash", a.PasswordHash},
	} {
		if err := checkString(f.what, f.v, MaxFieldLen); err != nil {
			return err
		}
	}
	if len(a.Interests) > 1000 || len(a.CustomFields) > 1000 {
		return invalid("more than 1000 interests or custom fields")
	}
	for _, s := range a.Interests {
		if err := checkString("interest", s, MaxFieldLen); err != nil {
			return err
		}
	}
	for _, c := range a.CustomFields {
		if c.Name == "" {
			return invalid("custom field without a name")
		}
		if err := checkString("custom field name", c.Name, MaxFieldLen); err != nil {
			return err
		}
		if err := checkString("custom field value", c.Value, MaxFieldLen); err != nil {
			return err
		}
	}
	return nil
}

// CheckGroup returns ErrInvalid unless g may be stored: a non-empty name within
// MaxFieldLen, a valid kind, and HubGroupID set exactly when Server is.
func CheckGroup(g Group) error {
	if g.Name == "" {
		return invalid("empty group name")
	}
	if err := checkString("group name", g.Name, MaxFieldLen); err != nil {
		return err
	}
	if !g.Kind.Valid() {
		return invalid("group kind %q", g.Kind)
	}
	if (g.Server == "") != (g.HubGroupID == "") {
		return invalid("group %q: server and hub group id go together", g.Name)
	}
	if err := checkString("server", g.Server, MaxFieldLen); err != nil {
		return err
	}
	return checkString("hubGroupId", g.HubGroupID, MaxFieldLen)
}

// CheckIDs returns ErrInvalid for more than MaxBatch ids or an empty id.
func CheckIDs(what string, ids []string) error {
	if len(ids) > MaxBatch {
		return invalid("%d %s: at most %d per call", len(ids), what, MaxBatch)
	}
	for _, id := range ids {
		if id == "" {
			return invalid("empty %s", what)
		}
	}
	return nil
}

// Merge returns stored with the fields of f taken from put: what an update writes.
// ID, Created and Modified stay those of stored. The result is normalized.
func Merge(stored, put Account, f Fields) Account {
	m := stored
	set := func(field Fields, apply func()) {
		if f.Has(field) {
			apply()
		}
	}
	set(FieldUsername, func() { m.Username = put.Username })
	set(FieldAuth, func() { m.Auth, m.Server, m.HubUserID = put.Auth, put.Server, put.HubUserID })
	set(FieldEmail, func() { m.Email = put.Email })
	set(FieldEmailVerified, func() { m.EmailVerified = put.EmailVerified })
	set(FieldGivenName, func() { m.GivenName = put.GivenName })
	set(FieldFamilyName, func() { m.FamilyName = put.FamilyName })
	set(FieldDisplayName, func() { m.DisplayName = put.DisplayName })
	set(FieldIDNumber, func() { m.IDNumber = put.IDNumber })
	set(FieldLanguage, func() { m.Language = put.Language })
	set(FieldTimezone, func() { m.Timezone = put.Timezone })
	set(FieldCity, func() { m.City = put.City })
	set(FieldCountry, func() { m.Country = put.Country })
	set(FieldPhone, func() { m.Phone = put.Phone })
	set(FieldTitle, func() { m.Title = put.Title })
	set(FieldOrganization, func() { m.Organization = put.Organization })
	set(FieldDepartment, func() { m.Department = put.Department })
	set(FieldInterests, func() { m.Interests = slices.Clone(put.Interests) })
	set(FieldCustomFields, func() { m.CustomFields = slices.Clone(put.CustomFields) })
	set(FieldPasswordHash, func() { m.PasswordHash = put.PasswordHash })
	set(FieldPrivileged, func() { m.Privileged = put.Privileged })
	set(FieldSuspended, func() { m.Suspended, m.SuspendedBy = put.Suspended, put.SuspendedBy })
	set(FieldDeleted, func() { m.Deleted = put.Deleted })
	return Normalize(m)
}

// SameContent reports whether a and b have the same stored fields (ID, Created and
// Modified are not compared). Both should be normalized.
func SameContent(a, b Account) bool {
	a.ID, a.Created, a.Modified = "", time.Time{}, time.Time{}
	b.ID, b.Created, b.Modified = "", time.Time{}, time.Time{}
	return a.Username == b.Username && a.Auth == b.Auth && a.Server == b.Server &&
		a.HubUserID == b.HubUserID && a.Email == b.Email && a.EmailVerified == b.EmailVerified &&
		a.GivenName == b.GivenName && a.FamilyName == b.FamilyName && a.DisplayName == b.DisplayName &&
		a.IDNumber == b.IDNumber && a.Language == b.Language && a.Timezone == b.Timezone &&
		a.City == b.City && a.Country == b.Country && a.Phone == b.Phone && a.Title == b.Title &&
		a.Organization == b.Organization && a.Department == b.Department &&
		slices.Equal(a.Interests, b.Interests) && slices.Equal(a.CustomFields, b.CustomFields) &&
		a.PasswordHash == b.PasswordHash && a.Privileged == b.Privileged &&
		a.Suspended == b.Suspended && a.SuspendedBy == b.SuspendedBy && a.Deleted.Equal(b.Deleted)
}

// CheckTakeover returns ErrPrivileged when writing merged over stored would turn a
// privileged manual account into a connect account.
func CheckTakeover(stored, merged Account) error {
	if stored.Auth != AuthConnect && merged.Auth == AuthConnect && (stored.Privileged || merged.Privileged) {
		return fmt.Errorf("account %s (%q): %w", stored.ID, stored.Username, ErrPrivileged)
	}
	return nil
}
