package idp

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"html/template"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/crewjam/saml"
)

// The signed Response is written here rather than by crewjam's
// IdpAuthnRequest.WriteResponse, which builds an etree document, copies it
// for each exclusive canonicalisation (once for the Assertion, once more
// for the whole Response) and serialises it again: three quarters of the
// CPU of an SSO with an ECDSA key went there. This writer produces the
// Assertion directly in exclusive canonical form (XML-DSig's
// http://www.w3.org/2001/10/xml-exc-c14n#, no prefix list, as crewjam
// uses), so its digest is taken over the bytes that are sent, and the
// Response is digested from its canonical rendering without building a
// tree.
//
// What is sent is the same document crewjam sends: the same elements,
// namespace declarations (xmlns:xs on the Response, so that schema-checking
// SPs resolve xsi:type="xs:string"), enveloped RSA-SHA256 or ECDSA-SHA256
// signatures over SHA-256 digests of the Assertion and then the Response,
// the signing certificate in KeyInfo, and the same auto-submitting form.
// Escaping follows the canonical rules on the wire too (a CR in a value is
// sent as &#xD;, which crewjam's writer sends raw and so breaks its own
// signature). Tests compare both writers' canonical output and signatures
// (response_test.go) and the interop suite verifies the result with
// xmlsec1, lasso, OneLogin and gosaml2.
//
// Anything this writer does not render (an SP with an encryption key, the
// HTTP-POST-SimpleSign binding, error Responses, assertion fields the hub
// never sets) goes through crewjam unchanged.

const (
	nsAssertion  = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsProtocol   = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsXS         = "http://www.w3.org/2001/XMLSchema"
	nsXSI        = "http://www.w3.org/2001/XMLSchema-instance"
	nsDS         = "http://www.w3.org/2000/09/xmldsig#"
	algExcC14N   = "http://www.w3.org/2001/10/xml-exc-c14n#"
	algEnveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	algSHA256    = "http://www.w3.org/2001/04/xmlenc#sha256"
	entityFormat = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

	// samlTimeFormat is crewjam's: UTC, at most millisecond precision.
	samlTimeFormat = "2006-01-02T15:04:05.999Z07:00"
)

// responseFormTemplate is crewjam's HTTP-POST form. The SAMLResponse value
// (base64, a few kilobytes) is spliced in at formPlaceholder so that
// html/template escapes only the short fields.
var responseFormTemplate = template.Must(template.New("saml-post-form").Parse(`` +
	`<html xmlns="http://www.w3.org/1999/xhtml">` +
	`<head><title>Continue</title></head>` +
	`<body>` +
	`<form method="post" action="{{.URL}}" id="SAMLResponseForm">` +
	`<input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}" />` +
	`<input type="hidden" name="RelayState" value="{{.RelayState}}" />` +
	`<input id="SAMLSubmitButton" type="submit" value="Continue" />` +
	`</form>` +
	`<script>document.getElementById('SAMLSubmitButton').style.visibility='hidden';</script>` +
	`<script>document.getElementById('SAMLResponseForm').submit();</script>` +
	`</body>` +
	`</html>`))

const formPlaceholder = "SAMLResponsePlaceholder"

// respBufs recycles the buffers of one Response (about 20 KB in all).
var respBufs = sync.Pool{New: func() any { return new(respBuf) }}

type respBuf struct {
	// assertion: unsigned, canonical; signed: signed, canonical (and
	// sent as is); rcanon: the Response, canonical; resp: the Response as
	// sent.
	assertion, signed, rcanon, resp, b64, page []byte
	form                                       bytes.Buffer
}

// maxPooledBuf keeps an unusually large Response's buffers out of the pool.
const maxPooledBuf = 256 << 10

func (b *respBuf) release() {
	if cap(b.assertion)+cap(b.signed)+cap(b.rcanon)+cap(b.resp)+cap(b.b64)+cap(b.page)+b.form.Cap() > maxPooledBuf {
		return
	}
	respBufs.Put(b)
}

// xmlSigner makes enveloped XML signatures with one key.
type xmlSigner struct {
	signer  crypto.Signer // as crewjam's IdentityProvider.Signer: ECDSA gives r || s
	method  string        // SignatureMethod algorithm URI
	certB64 string        // the certificate for KeyInfo
}

// fastWritable reports whether writeSignedResponse renders req: a
// successful assertion, in the clear, to an HTTP-POST endpoint, made only
// of what the hub's assertionMaker sets.
func fastWritable(req *saml.IdpAuthnRequest) bool {
	if req.Assertion == nil || req.ACSEndpoint == nil || req.ACSEndpoint.Binding != saml.HTTPPostBinding ||
		req.SPSSODescriptor == nil || req.IDP == nil || req.IDP.ResponseFormTemplate != nil {
		return false
	}
	// crewjam encrypts to a key used for "encryption" or for both uses:
	// any key that is not signing-only leaves the Response to crewjam.
	for _, kd := range req.SPSSODescriptor.KeyDescriptors {
		if kd.Use != "signing" {
			return false
		}
	}
	return renderable(req.Assertion)
}

// renderable reports whether appendAssertion renders every field of a that
// is set.
func renderable(a *saml.Assertion) bool {
	if a.Signature != nil || a.Issuer.NameQualifier != "" || a.Issuer.SPNameQualifier != "" || a.Issuer.SPProvidedID != "" {
		return false
	}
	if s := a.Subject; s != nil {
		if s.BaseID != nil || s.EncryptedID != nil {
			return false
		}
		for _, sc := range s.SubjectConfirmations {
			if sc.NameID != nil || sc.EncryptedID != nil {
				return false
			}
		}
	}
	if c := a.Conditions; c != nil && (c.OneTimeUse != nil || c.ProxyRestriction != nil || len(c.UnknownConditions) > 0) {
		return false
	}
	for _, st := range a.AuthnStatements {
		if st.SubjectLocality != nil {
			return false
		}
	}
	for _, as := range a.AttributeStatements {
		for _, at := range as.Attributes {
			for _, v := range at.Values {
				if v.Nil || v.Encoding != "" || v.NameID != nil {
					return false
				}
			}
		}
	}
	return true
}

// writeSignedResponse signs req's Assertion and a Response with ID respID
// around it and writes the auto-submitting form. It writes nothing when it
// fails.
func writeSignedResponse(w http.ResponseWriter, req *saml.IdpAuthnRequest, s xmlSigner, respID string) error {
	b := respBufs.Get().(*respBuf)
	defer b.release()
	issuer := req.IDP.MetadataURL.String()

	// The Assertion, canonical and unsigned, split after its Issuer where
	// the Signature goes.
	a := b.assertion[:0]
	a, split := appendAssertion(a, req.Assertion)
	digest := sha256.Sum256(a)
	b.assertion = a
	signed := append(b.signed[:0], a[:split]...)
	signed, err := s.appendSignature(signed, req.Assertion.ID, digest)
	if err != nil {
		return err
	}
	signed = append(signed, a[split:]...)
	b.signed = signed

	// The Response's canonical form, for its digest: its own namespace
	// declarations only where used (xmlns:saml moves to the Issuer,
	// xmlns:xs is never visibly used), attributes sorted.
	now := req.Now
	c := b.rcanon[:0]
	c = append(c, `<samlp:Response xmlns:samlp="`+nsProtocol+`"`...)
	c = appendAttr(c, "Destination", req.ACSEndpoint.Location)
	c = appendAttr(c, "ID", respID)
	if req.Request.ID != "" {
		c = appendAttr(c, "InResponseTo", req.Request.ID)
	}
	c = appendTimeAttr(c, "IssueInstant", now)
	c = append(c, ` Version="2.0">`...)
	c = append(c, `<saml:Issuer xmlns:saml="`+nsAssertion+`" Format="`+entityFormat+`">`...)
	c = appendText(c, issuer)
	c = append(c, `</saml:Issuer>`...)
	tail := len(c)
	c = append(c, `<samlp:Status><samlp:StatusCode Value="`...)
	c = appendAttrValue(c, saml.StatusSuccess)
	c = append(c, `"></samlp:StatusCode></samlp:Status>`...)
	c = append(c, signed...)
	c = append(c, `</samlp:Response>`...)
	respDigest := sha256.Sum256(c)
	b.rcanon = c
	statusAndAssertion := c[tail:]

	// The Response as sent: crewjam's start tag and namespace
	// declarations, then the Signature, Status and signed Assertion.
	wr := append(b.resp[:0], `<samlp:Response xmlns:saml="`+nsAssertion+`" xmlns:samlp="`+nsProtocol+`" xmlns:xs="`+nsXS+`"`...)
	wr = appendAttr(wr, "ID", respID)
	if req.Request.ID != "" {
		wr = appendAttr(wr, "InResponseTo", req.Request.ID)
	}
	wr = append(wr, ` Version="2.0"`...)
	wr = appendTimeAttr(wr, "IssueInstant", now)
	wr = appendAttr(wr, "Destination", req.ACSEndpoint.Location)
	wr = append(wr, `><saml:Issuer Format="`+entityFormat+`">`...)
	wr = appendText(wr, issuer)
	wr = append(wr, `</saml:Issuer>`...)
	wr, err = s.appendSignature(wr, respID, respDigest)
	if err != nil {
		return err
	}
	wr = append(wr, statusAndAssertion...)
	b.resp = wr

	n := base64.StdEncoding.EncodedLen(len(wr))
	if cap(b.b64) < n {
		b.b64 = make([]byte, n)
	}
	enc := b.b64[:n]
	base64.StdEncoding.Encode(enc, wr)

	b.form.Reset()
	if err := responseFormTemplate.Execute(&b.form, saml.IdpAuthnRequestForm{
		URL: req.ACSEndpoint.Location, SAMLResponse: formPlaceholder, RelayState: req.RelayState,
	}); err != nil {
		return err
	}
	form := b.form.Bytes()
	i := bytes.Index(form, []byte(formPlaceholder))
	page := append(b.page[:0], form[:i]...)
	// html/template writes '+' in an attribute as &#43;; the rest of the
	// base64 alphabet needs no escaping.
	for {
		j := bytes.IndexByte(enc, '+')
		if j < 0 {
			page = append(page, enc...)
			break
		}
		page = append(page, enc[:j]...)
		page = append(page, "&#43;"...)
		enc = enc[j+1:]
	}
	page = append(page, form[i+len(formPlaceholder):]...)
	b.page = page

	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("Pragma", "no-cache")
	_, err = w.Write(page)
	return err
}

// newResponseID is a Response ID as crewjam makes them.
func newResponseID() string {
	var r [20]byte
	_, _ = rand.Read(r[:])
	return "id-" + hex.EncodeToString(r[:])
}

// appendSignature appends the canonical ds:Signature of the element with
// ID id whose canonical form has the given SHA-256 digest: SignedInfo
// (exclusive c14n, the enveloped-signature and exclusive c14n transforms),
// SignatureValue over SignedInfo's canonical form, and KeyInfo.
func (s xmlSigner) appendSignature(b []byte, id string, digest [32]byte) ([]byte, error) {
	start := len(b)
	b = append(b, `<ds:Signature xmlns:ds="`+nsDS+`">`...)
	siStart := len(b)
	// SignedInfo canonicalised on its own declares the ds namespace; inside
	// Signature it inherits it. It is rendered here with the declaration,
	// hashed, then the declaration is cut out.
	b = append(b, `<ds:SignedInfo xmlns:ds="`+nsDS+`">`...)
	b = append(b, `<ds:CanonicalizationMethod Algorithm="`+algExcC14N+`"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm="`...)
	b = appendAttrValue(b, s.method)
	b = append(b, `"></ds:SignatureMethod><ds:Reference URI="#`...)
	b = appendAttrValue(b, id)
	b = append(b, `"><ds:Transforms><ds:Transform Algorithm="`+algEnveloped+`"></ds:Transform>`+
		`<ds:Transform Algorithm="`+algExcC14N+`"></ds:Transform></ds:Transforms>`+
		`<ds:DigestMethod Algorithm="`+algSHA256+`"></ds:DigestMethod><ds:DigestValue>`...)
	b = base64.StdEncoding.AppendEncode(b, digest[:])
	b = append(b, `</ds:DigestValue></ds:Reference></ds:SignedInfo>`...)
	siDigest := sha256.Sum256(b[siStart:])
	sig, err := s.signer.Sign(rand.Reader, siDigest[:], crypto.SHA256)
	if err != nil {
		return b[:start], err
	}
	const decl = ` xmlns:ds="` + nsDS + `"`
	cut := siStart + len(`<ds:SignedInfo`)
	b = append(b[:cut], b[cut+len(decl):]...)
	b = append(b, `<ds:SignatureValue>`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	b = append(b, `</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>`...)
	b = append(b, s.certB64...)
	b = append(b, `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>`...)
	return b, nil
}

// appendAssertion appends a in exclusive canonical form, without a
// Signature, and returns where the Signature belongs (after the Issuer).
// Attributes are written in canonical order (unqualified ones by name;
// none of the hub's are qualified but xsi:type, which sorts after them).
func appendAssertion(b []byte, a *saml.Assertion) ([]byte, int) {
	b = append(b, `<saml:Assertion xmlns:saml="`+nsAssertion+`"`...)
	b = appendAttr(b, "ID", a.ID)
	b = appendTimeAttr(b, "IssueInstant", a.IssueInstant)
	b = append(b, ` Version="2.0"><saml:Issuer`...)
	b = appendAttrIf(b, "Format", a.Issuer.Format)
	b = append(b, '>')
	b = appendText(b, a.Issuer.Value)
	b = append(b, `</saml:Issuer>`...)
	split := len(b)
	if s := a.Subject; s != nil {
		b = append(b, `<saml:Subject>`...)
		if s.NameID != nil {
			b = appendNameID(b, s.NameID)
		}
		for _, sc := range s.SubjectConfirmations {
			b = append(b, `<saml:SubjectConfirmation`...)
			b = appendAttr(b, "Method", sc.Method)
			b = append(b, '>')
			if d := sc.SubjectConfirmationData; d != nil {
				b = append(b, `<saml:SubjectConfirmationData`...)
				b = appendAttrIf(b, "Address", d.Address)
				b = appendAttrIf(b, "InResponseTo", d.InResponseTo)
				b = appendTimeAttrIf(b, "NotBefore", d.NotBefore)
				b = appendTimeAttrIf(b, "NotOnOrAfter", d.NotOnOrAfter)
				b = appendAttrIf(b, "Recipient", d.Recipient)
				b = append(b, `></saml:SubjectConfirmationData>`...)
			}
			b = append(b, `</saml:SubjectConfirmation>`...)
		}
		b = append(b, `</saml:Subject>`...)
	}
	if c := a.Conditions; c != nil {
		b = append(b, `<saml:Conditions`...)
		b = appendTimeAttrIf(b, "NotBefore", c.NotBefore)
		b = appendTimeAttrIf(b, "NotOnOrAfter", c.NotOnOrAfter)
		b = append(b, '>')
		for _, ar := range c.AudienceRestrictions {
			b = append(b, `<saml:AudienceRestriction>`...)
			for _, au := range ar.AllAudiences() {
				b = append(b, `<saml:Audience>`...)
				b = appendText(b, au.Value)
				b = append(b, `</saml:Audience>`...)
			}
			b = append(b, `</saml:AudienceRestriction>`...)
		}
		b = append(b, `</saml:Conditions>`...)
	}
	for _, st := range a.AuthnStatements {
		b = append(b, `<saml:AuthnStatement`...)
		b = appendTimeAttr(b, "AuthnInstant", st.AuthnInstant)
		b = appendAttrIf(b, "SessionIndex", st.SessionIndex)
		if st.SessionNotOnOrAfter != nil {
			b = appendTimeAttr(b, "SessionNotOnOrAfter", *st.SessionNotOnOrAfter)
		}
		b = append(b, `><saml:AuthnContext>`...)
		if ref := st.AuthnContext.AuthnContextClassRef; ref != nil {
			b = append(b, `<saml:AuthnContextClassRef>`...)
			b = appendText(b, ref.Value)
			b = append(b, `</saml:AuthnContextClassRef>`...)
		}
		for _, aa := range st.AuthnContext.AuthenticatingAuthorities {
			b = append(b, `<saml:AuthenticatingAuthority>`...)
			b = appendText(b, aa.Value)
			b = append(b, `</saml:AuthenticatingAuthority>`...)
		}
		b = append(b, `</saml:AuthnContext></saml:AuthnStatement>`...)
	}
	for _, as := range a.AttributeStatements {
		b = append(b, `<saml:AttributeStatement>`...)
		for _, at := range as.Attributes {
			b = append(b, `<saml:Attribute`...)
			b = appendAttrIf(b, "FriendlyName", at.FriendlyName)
			b = appendAttrIf(b, "Name", at.Name)
			b = appendAttrIf(b, "NameFormat", at.NameFormat)
			b = append(b, '>')
			for _, v := range at.Values {
				// crewjam declares xsi and xs on every value; exclusive
				// c14n keeps xsi where xsi:type uses it and drops xs.
				if v.Type != "" {
					b = append(b, `<saml:AttributeValue xmlns:xsi="`+nsXSI+`" xsi:type="`...)
					b = appendAttrValue(b, v.Type)
					b = append(b, `">`...)
				} else {
					b = append(b, `<saml:AttributeValue>`...)
				}
				b = appendText(b, v.Value)
				b = append(b, `</saml:AttributeValue>`...)
			}
			b = append(b, `</saml:Attribute>`...)
		}
		b = append(b, `</saml:AttributeStatement>`...)
	}
	b = append(b, `</saml:Assertion>`...)
	return b, split
}

func appendNameID(b []byte, n *saml.NameID) []byte {
	b = append(b, `<saml:NameID`...)
	b = appendAttrIf(b, "Format", n.Format)
	b = appendAttrIf(b, "NameQualifier", n.NameQualifier)
	b = appendAttrIf(b, "SPNameQualifier", n.SPNameQualifier)
	b = appendAttrIf(b, "SPProvidedID", n.SPProvidedID)
	b = append(b, '>')
	b = appendText(b, n.Value)
	return append(b, `</saml:NameID>`...)
}

func appendAttr(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, `="`...)
	b = appendAttrValue(b, value)
	return append(b, '"')
}

// appendAttrIf appends the attribute when value is not empty (crewjam
// leaves empty optional attributes out).
func appendAttrIf(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	return appendAttr(b, name, value)
}

func appendTimeAttr(b []byte, name string, t time.Time) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, `="`...)
	b = t.UTC().AppendFormat(b, samlTimeFormat)
	return append(b, '"')
}

func appendTimeAttrIf(b []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return appendTimeAttr(b, name, t)
}

func appendAttrValue(b []byte, s string) []byte { return appendEscaped(b, s, true) }
func appendText(b []byte, s string) []byte      { return appendEscaped(b, s, false) }

// appendEscaped escapes s as canonical XML (C14N 1.0 §2.3) writes it: in
// attribute values &, <, ", tab, LF and CR; in text &, <, > and CR.
// Characters XML 1.0 does not allow (and invalid UTF-8) become U+FFFD, as
// etree writes them for crewjam.
func appendEscaped(b []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '&' && c != '<' && c != '>' && c != '"' {
			i++
			continue
		}
		r, width := rune(c), 1
		if c >= utf8.RuneSelf {
			r, width = utf8.DecodeRuneInString(s[i:])
		}
		var esc string
		switch {
		case r == '&':
			esc = "&amp;"
		case r == '<':
			esc = "&lt;"
		case r == '>':
			if attr {
				i += width
				continue
			}
			esc = "&gt;"
		case r == '"':
			if !attr {
				i += width
				continue
			}
			esc = "&quot;"
		case r == '\t':
			if !attr {
				i += width
				continue
			}
			esc = "&#x9;"
		case r == '\n':
			if !attr {
				i += width
				continue
			}
			esc = "&#xA;"
		case r == '\r':
			esc = "&#xD;"
		case !xmlChar(r) || (r == utf8.RuneError && width == 1):
			esc = "\uFFFD"
		default:
			i += width
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		i += width
		last = i
	}
	return append(b, s[last:]...)
}

// xmlChar reports whether XML 1.0 allows r (production [2] Char).
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}
