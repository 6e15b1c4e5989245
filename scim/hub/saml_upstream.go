package hub

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
)

// UpstreamConfig makes the hub a SAML SP of an enterprise IdP: its login page
// offers "Log in with <Name>", and a user who logs in there is matched to a
// hub user by one attribute.
type UpstreamConfig struct {
	// Metadata is the enterprise IdP's metadata URL or file; "" disables it.
	Metadata string
	// Name is shown on the login page.
	Name string
	// MatchAttribute names the asserted attribute that identifies the user,
	// optionally followed by "=FIELD" for the hub field it is compared with:
	// email (default for email/mail attributes), userName (default
	// otherwise), externalId or employeeNumber. "nameid" uses the NameID.
	MatchAttribute string
	// CreateUsers creates a hub user when none matches (off by default).
	CreateUsers bool
}

// upstream match fields.
const (
	fieldEmail          = "email"
	fieldUserName       = "userName"
	fieldExternalID     = "externalId"
	fieldEmployeeNumber = "employeeNumber"
)

// parseMatch splits MatchAttribute into the attribute and the hub field.
func (u UpstreamConfig) parseMatch() (attr, field string, err error) {
	attr, field, _ = strings.Cut(strings.TrimSpace(u.MatchAttribute), "=")
	if attr == "" {
		attr = "email"
	}
	if field == "" {
		switch strings.ToLower(attr) {
		case "email", "mail", "emailaddress", "urn:oid:0.9.2342.19200300.100.1.3":
			field = fieldEmail
		default:
			field = fieldUserName
		}
	}
	switch field {
	case fieldEmail, fieldUserName, fieldExternalID, fieldEmployeeNumber:
		return attr, field, nil
	}
	return "", "", fmt.Errorf("upstream match field %q: want email, userName, externalId or employeeNumber", field)
}

func (u UpstreamConfig) validate() error {
	if u.Metadata == "" {
		return nil
	}
	var errs []error
	if strings.TrimSpace(u.Name) == "" {
		errs = append(errs, errors.New("upstream IdP: a name is required"))
	}
	if _, _, err := u.parseMatch(); err != nil {
		errs = append(errs, err)
	}
	if strings.Contains(u.Metadata, "://") {
		if m, err := url.Parse(u.Metadata); err != nil || (m.Scheme != "http" && m.Scheme != "https") || m.Host == "" {
			errs = append(errs, fmt.Errorf("upstream IdP metadata %q: want an http(s) URL or a file", u.Metadata))
		}
	}
	return errors.Join(errs...)
}

// settingUpstreamKey holds the hub SP's key pair (PEM) for the upstream IdP.
// It is internal: not one of the hub settings an operator edits.
const settingUpstreamKey = "saml.upstream-sp-key"

// upstreamUsers implements idp.UpstreamUsers over the store.
type upstreamUsers struct {
	a     samlStore
	cfg   UpstreamConfig
	actor string

	mu      sync.Mutex
	keyPEM  []byte
	certPEM []byte
	read    time.Time
	hubURL  string
	clock   func() time.Time
}

var _ idp.UpstreamUsers = (*upstreamUsers)(nil)

// key returns the SP key pair from the store, creating it the first time.
// It is re-read every minute so that replicas converge on one key.
func (u *upstreamUsers) key(ctx context.Context) ([]byte, []byte, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.clock()
	if u.keyPEM != nil && now.Sub(u.read) < time.Minute && !now.Before(u.read) {
		return u.keyPEM, u.certPEM, nil
	}
	v, err := u.a.st.Setting(ctx, settingUpstreamKey)
	if errors.Is(err, store.ErrNotFound) {
		cn := "connect-hub"
		if h, err := url.Parse(u.hubURL); err == nil && h.Hostname() != "" {
			cn = h.Hostname()
		}
		k, err := idp.GenerateKey(idp.AlgRSA, cn, now, time.Time{})
		if err != nil {
			return nil, nil, err
		}
		v = string(k.KeyPEM) + string(k.CertPEM)
		if err := u.a.st.SetSetting(ctx, settingUpstreamKey, v); err != nil {
			return nil, nil, err
		}
	} else if err != nil {
		return nil, nil, err
	}
	var keyPEM, certPEM []byte
	rest := []byte(v)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			certPEM = pem.EncodeToMemory(b)
		} else {
			keyPEM = pem.EncodeToMemory(b)
		}
	}
	if keyPEM == nil || certPEM == nil {
		return nil, nil, errors.New("stored upstream SP key is damaged")
	}
	u.keyPEM, u.certPEM, u.read = keyPEM, certPEM, now
	return keyPEM, certPEM, nil
}

// attr returns the first value of the configured attribute.
func attrValue(id idp.UpstreamIdentity, name string) string {
	if strings.EqualFold(name, "nameid") {
		return id.NameID
	}
	for k, vs := range id.Attributes {
		if strings.EqualFold(k, name) && len(vs) > 0 && strings.TrimSpace(vs[0]) != "" {
			return strings.TrimSpace(vs[0])
		}
	}
	return ""
}

// MatchUpstream finds the one hub user whose field equals the asserted
// attribute. idp.ErrNotFound / idp.ErrAmbiguous otherwise (or, with
// CreateUsers, a new user).
func (u *upstreamUsers) MatchUpstream(ctx context.Context, id idp.UpstreamIdentity) (idp.User, error) {
	attr, field, err := u.cfg.parseMatch()
	if err != nil {
		return idp.User{}, err
	}
	value := attrValue(id, attr)
	if value == "" {
		return idp.User{}, fmt.Errorf("upstream assertion has no %q attribute: %w", attr, idp.ErrNotFound)
	}
	var path string
	switch field {
	case fieldEmail:
		path = "emails.value"
	case fieldUserName:
		path = "userName"
	case fieldExternalID:
		path = "externalId"
	case fieldEmployeeNumber:
		path = scim.SchemaEnterpriseUser + ":employeeNumber"
	}
	expr, err := filter.Parse(scim.UserResourceType, path+" eq "+strconv.Quote(value), filter.Limits{})
	if err != nil {
		return idp.User{}, fmt.Errorf("upstream match filter: %w", err)
	}
	page, err := u.a.st.ListUsers(ctx, store.Query{Filter: expr, StartIndex: 1, Count: 2})
	if err != nil {
		return idp.User{}, err
	}
	switch {
	case page.Total > 1:
		return idp.User{}, fmt.Errorf("%d users have %s %q: %w", page.Total, field, value, idp.ErrAmbiguous)
	case page.Total == 1 && len(page.Items) == 1:
		return u.a.user(ctx, page.Items[0])
	case !u.cfg.CreateUsers:
		return idp.User{}, fmt.Errorf("no user has %s %q: %w", field, value, idp.ErrNotFound)
	}
	return u.create(ctx, id, field, value)
}

// create makes a hub user from the upstream identity (CreateUsers).
func (u *upstreamUsers) create(ctx context.Context, id idp.UpstreamIdentity, field, value string) (idp.User, error) {
	nu := scim.User{Active: scim.BoolPtr(true)}
	email := attrValue(id, "email")
	if email == "" {
		email = attrValue(id, "mail")
	}
	nu.UserName = attrValue(id, "userName")
	if nu.UserName == "" {
		nu.UserName = attrValue(id, "uid")
	}
	switch field {
	case fieldEmail:
		email = value
	case fieldUserName:
		nu.UserName = value
	case fieldExternalID:
		nu.ExternalID = value
	case fieldEmployeeNumber:
		nu.Enterprise = &scim.EnterpriseUser{EmployeeNumber: value}
	}
	if nu.UserName == "" {
		nu.UserName = email
	}
	if nu.UserName == "" {
		return idp.User{}, fmt.Errorf("upstream assertion has no user name or email to create a user from: %w", idp.ErrNotFound)
	}
	if email != "" {
		nu.Emails = []scim.MultiValue{{Value: email, Primary: true, Type: "work"}}
	}
	given, family := attrValue(id, "givenName"), attrValue(id, "sn")
	if family == "" {
		family = attrValue(id, "surname")
	}
	if given != "" || family != "" {
		nu.Name = &scim.Name{GivenName: given, FamilyName: family}
	}
	nu.DisplayName = attrValue(id, "displayName")
	nu.SetSchemas()
	created, err := u.a.st.CreateUser(ctx, nu)
	if err != nil {
		return idp.User{}, fmt.Errorf("create user from upstream login: %w", err)
	}
	if err := u.a.st.Audit(ctx, store.AuditEntry{Actor: u.actor, Action: "user.create", Target: created.ID + " " + created.UserName, Detail: "first login through the upstream IdP"}); err != nil {
		return idp.User{}, err
	}
	return u.a.user(ctx, created)
}
