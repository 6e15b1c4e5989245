package hub

import (
	"context"
	"encoding/xml"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

var encKeyRE = regexp.MustCompile(`(?s)<KeyDescriptor use="encryption">.*?</KeyDescriptor>`)

// TestSAMLAssertionContents reads a Response issued to an SP without an
// encryption key: both signed, persistent NameID = SCIM id, Audience,
// Recipient, InResponseTo, 5-minute validity, the six attributes.
func TestSAMLAssertionContents(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newSAMLEnv(t, func(c *Config) { c.Clock = func() time.Time { return now } })
	u := e.addUser(t, "alice", "pw-alice", true, "Staff", "Alumni")
	if _, err := e.st.CreateGroup(context.Background(), scimCourse("Maths", u.ID)); err != nil {
		t.Fatal(err)
	}
	sp := e.newSP(t, false, nil)
	md := encKeyRE.ReplaceAll(sp.metadata(t), nil)
	if _, err := RegisterServiceProvider(context.Background(), e.st, "test", md, "test", false); err != nil {
		t.Fatal(err)
	}
	c := e.browser(t)
	code, page := browse(t, c, sp.srv.URL+"/app")
	if code != 200 {
		t.Fatal(code)
	}
	_, login := formFields(page)
	code, page = e.submitLogin(t, c, page, "alice", "pw-alice")
	if code != 200 {
		t.Fatal(code, page)
	}
	_ = login
	raw := mustDecode(t, page)
	var resp saml.Response
	if err := xml.Unmarshal([]byte(raw), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Signature == nil {
		t.Error("Response is not signed")
	}
	if resp.Assertion == nil {
		t.Fatal("no clear assertion")
	}
	a := resp.Assertion
	if a.Signature == nil {
		t.Error("Assertion is not signed")
	}
	if strings.Contains(raw, "rsa-sha1") || strings.Contains(raw, "xmldsig#sha1") {
		t.Error("SHA-1 in the response")
	}
	acs := sp.srv.URL + "/saml/acs"
	if resp.InResponseTo == "" || resp.Destination != acs {
		t.Errorf("Response InResponseTo %q Destination %q", resp.InResponseTo, resp.Destination)
	}
	if a.Subject.NameID.Format != string(saml.PersistentNameIDFormat) || a.Subject.NameID.Value != u.ID {
		t.Errorf("NameID %+v, want persistent %s", a.Subject.NameID, u.ID)
	}
	scd := a.Subject.SubjectConfirmations[0].SubjectConfirmationData
	if scd.Recipient != acs || scd.InResponseTo != resp.InResponseTo || !scd.NotOnOrAfter.Equal(now.Add(5*time.Minute)) {
		t.Errorf("SubjectConfirmationData %+v", scd)
	}
	if aud := a.Conditions.AudienceRestrictions[0].Audience.Value; aud != sp.entityID() {
		t.Errorf("Audience %q, want %q", aud, sp.entityID())
	}
	if !a.Conditions.NotOnOrAfter.Equal(now.Add(5 * time.Minute)) {
		t.Errorf("Conditions.NotOnOrAfter %s, want now+5m", a.Conditions.NotOnOrAfter)
	}
	if a.Issuer.Value != e.hub.URL+idp.PathMetadata {
		t.Errorf("Issuer %q", a.Issuer.Value)
	}
	got := map[string][]string{}
	for _, at := range a.AttributeStatements[0].Attributes {
		for _, v := range at.Values {
			got[at.Name] = append(got[at.Name], v.Value)
		}
	}
	want := map[string][]string{
		"userName": {"alice"}, "email": {"alice@example.org"}, "givenName": {"Givenalice"},
		"sn": {"Familyalice"}, "displayName": {"Display alice"}, "groups": {"Alumni", "Staff"},
	}
	for k, v := range want {
		if strings.Join(got[k], "|") != strings.Join(v, "|") {
			t.Errorf("attribute %s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("attributes %v", got)
	}
	// The SP accepts it.
	code, body := postResponse(t, c, page)
	if code != 200 || !strings.HasPrefix(body, "hello userName=alice") {
		t.Fatalf("%d %s", code, body)
	}
}

func TestSAMLMetrics(t *testing.T) {
	e := newSAMLEnv(t, nil)
	e.addUser(t, "alice", "pw-alice", true)
	sp := e.newSP(t, true, nil)
	e.spLogin(t, e.browser(t), sp, "alice", "pw-alice")
	c := e.browser(t)
	_, page := browse(t, c, e.hub.URL+idp.PathLogin)
	e.submitLogin(t, c, page, "alice", "wrong")
	_, metrics := browse(t, e.browser(t), e.hub.URL+"/metrics")
	for _, want := range []string{
		`connect_hub_saml_logins_total{result="success"} 1`,
		`connect_hub_saml_logins_total{result="bad_credentials"} 1`,
		`connect_hub_saml_responses_total{kind="sso"} 1`,
		`connect_hub_saml_signing_seconds_count{algorithm="rsa-sha256"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func scimCourse(name, member string) scim.Group {
	return scim.Group{DisplayName: name, Connect: &scim.ConnectGroup{Kind: "course"}, Members: []scim.Member{{Value: member}}}
}

// TestSAMLSlowLogin: a user who spends longer on the login form than the
// AuthnRequest's own lifetime (crewjam: 90 s) still gets in; one who takes
// longer than the login window does not.
func TestSAMLSlowLogin(t *testing.T) {
	fc := clockwork.NewFakeClockAt(time.Now().Truncate(time.Second))
	e := newSAMLEnv(t, func(c *Config) { c.Clock = fc.Now })
	e.addUser(t, "alice", "pw-alice", true)
	sp := e.newSP(t, true, func(o *samlsp.Options) {
		o.Clock = dsig.NewFakeClock(fc)
		o.TrackedRequestMaxAge = time.Hour
	})
	for _, tt := range []struct {
		wait time.Duration
		ok   bool
	}{{4 * time.Minute, true}, {idp.DefaultLoginWindow + time.Minute, false}} {
		c := e.browser(t)
		code, page := browse(t, c, sp.srv.URL+"/app")
		if code != 200 {
			t.Fatal(code, page)
		}
		fc.Advance(tt.wait)
		code, page = e.submitLogin(t, c, page, "alice", "pw-alice")
		if !tt.ok {
			wantRefusal(t, code, page, http.StatusBadRequest, "Login request expired")
			continue
		}
		if code != 200 {
			t.Fatalf("after %s: %d\n%s", tt.wait, code, page)
		}
		code, page = postResponse(t, c, page)
		if code != 200 || !strings.HasPrefix(page, "hello userName=alice") {
			t.Fatalf("after %s: SP said %d %s", tt.wait, code, page)
		}
	}
}

// TestSAMLClientScope: a client system's SP only receives users in the
// client's scope (its restrict audience).
func TestSAMLClientScope(t *testing.T) {
	e := newSAMLEnv(t, nil)
	in := e.addUser(t, "inside", "pw-in", true)
	e.addUser(t, "outside", "pw-out", true)
	aud, err := e.st.CreateGroup(context.Background(), scim.Group{DisplayName: "Site A", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}, Members: []scim.Member{{Value: in.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	sp := e.newSP(t, true, nil)
	if _, err := e.st.CreateClient(context.Background(), store.Client{Name: "Site A", URL: "https://site-a.example/", EntityID: sp.entityID(), RestrictAudience: aud.ID},
		store.Token{Name: "bridge-a", Hash: HashToken("chub_x")}); err != nil {
		t.Fatal(err)
	}
	if page := e.spLogin(t, e.browser(t), sp, "inside", "pw-in"); !strings.HasPrefix(page, "hello userName=inside") {
		t.Fatal(page)
	}
	c := e.browser(t)
	_, page := browse(t, c, sp.srv.URL+"/app")
	code, page := e.submitLogin(t, c, page, "outside", "pw-out")
	wantRefusal(t, code, page, http.StatusForbidden, "No access")
	// A hand-registered SP is not scoped.
	other := e.newSP(t, true, nil)
	if page := e.spLogin(t, e.browser(t), other, "outside", "pw-out"); !strings.HasPrefix(page, "hello userName=outside") {
		t.Fatal(page)
	}
}
