package sp

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/url"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// ECDSA signatures from hubs, converted for the XML library.
//
// XML Signature 1.1 §6.4.3 (and RFC 4051 §3.3) define an ECDSA SignatureValue
// as the octet string r || s, each integer left-padded to the curve size; the
// SAML bindings use the same value for the detached Signature parameter of
// HTTP-Redirect and HTTP-POST-SimpleSign. A Connect hub started with
// --saml-signing ecdsa signs that way (as xmlsec1, Santuario and Shibboleth
// expect). goxmldsig v1.6.1, which crewjam/saml v0.6.3 verifies with, and
// crewjam's detached-signature check both hand the value to
// x509.Certificate.CheckSignature, which accepts only ASN.1 DER. Until the
// library accepts r || s, every message is passed through derSignatures
// crewjam verifies it: XML signatures through ecdsaVerifier (crewjam's
// SignatureVerifier hook), detached ones by derSignatures on the request. An
// ecdsa-sha* signature that is not already DER is rewritten to DER; only the
// value itself changes, never anything a signature covers.
//
// Not covered: a signature inside an EncryptedAssertion (crewjam decrypts
// and verifies in one call). Hubs encrypt only to SPs that publish an
// encryption key, which this SP does only with Config.EncryptAssertions.

// ecdsaAlgorithm reports whether an XML-DSig or SigAlg URI names ECDSA.
func ecdsaAlgorithm(alg string) bool {
	return strings.HasPrefix(alg, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-")
}

// rawECDSAToDER returns sig as DER when it is an r || s value, and nil when
// it is DER already or not a plausible r || s value (the verifier then
// refuses it as before).
func rawECDSAToDER(sig []byte) []byte {
	var parsed struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(sig, &parsed); err == nil && len(rest) == 0 {
		return nil // DER already
	}
	switch len(sig) {
	case 64, 96, 132: // P-256, P-384, P-521
	default:
		return nil
	}
	n := len(sig) / 2
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])})
	if err != nil {
		return nil
	}
	return der
}

// ecdsaVerifier is the SignatureVerifier of every hub's crewjam service
// provider. It verifies an element as crewjam would (dsig's Validate, and
// each trusted certificate in turn when the signature names none and several
// are trusted, as during a hub's key rollover), after rewriting the
// element's own ECDSA SignatureValue to DER in a copy. The enveloped
// signature transform leaves that value out of the digest; a signature
// nested inside (the Assertion's, inside a signed Response) is part of the
// outer digest and stays as received until its own element is verified.
type ecdsaVerifier struct{}

var _ saml.SignedElementVerifier = ecdsaVerifier{}

// VerifySignature implements saml.SignatureVerifier.
func (v ecdsaVerifier) VerifySignature(vc *dsig.ValidationContext, el *etree.Element) error {
	_, err := v.VerifySignedElement(vc, el)
	return err
}

// VerifySignedElement implements saml.SignedElementVerifier.
func (ecdsaVerifier) VerifySignedElement(vc *dsig.ValidationContext, el *etree.Element) (*etree.Element, error) {
	el = withDERSignature(el)
	signed, err := vc.Validate(el)
	if err == nil {
		return signed, nil
	}
	store, ok := vc.CertificateStore.(*dsig.MemoryX509CertificateStore)
	if !ok || len(store.Roots) < 2 || signatureNamesCertificate(el) {
		return nil, err
	}
	for _, cert := range store.Roots {
		one := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
		one.IdAttribute, one.Clock = vc.IdAttribute, vc.Clock
		if signed, err1 := one.Validate(el); err1 == nil {
			return signed, nil
		}
	}
	return nil, err
}

// ownSignature returns el's enveloped ds:Signature child, or nil.
func ownSignature(el *etree.Element) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" && c.NamespaceURI() == dsig.Namespace {
			return c
		}
	}
	return nil
}

func signatureNamesCertificate(el *etree.Element) bool {
	sig := ownSignature(el)
	return sig != nil && sig.FindElement("./KeyInfo/X509Data/X509Certificate") != nil
}

// withDERSignature returns el, or a copy of it whose own ECDSA
// SignatureValue is DER when it was r || s.
func withDERSignature(el *etree.Element) *etree.Element {
	sig := ownSignature(el)
	if sig == nil {
		return el
	}
	m, v := sig.FindElement("./SignedInfo/SignatureMethod"), sig.FindElement("./SignatureValue")
	if m == nil || v == nil || !ecdsaAlgorithm(m.SelectAttrValue("Algorithm", "")) {
		return el
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(v.Text()), ""))
	if err != nil {
		return el
	}
	der := rawECDSAToDER(raw)
	if der == nil {
		return el
	}
	cp := el.Copy()
	ownSignature(cp).FindElement("./SignatureValue").SetText(base64.StdEncoding.EncodeToString(der))
	return cp
}

// derSignatures rewrites the detached ECDSA signature of a SAML message
// request (the Signature field of HTTP-POST-SimpleSign, the Signature
// parameter of HTTP-Redirect) to DER before crewjam reads it. It parses the
// form, so call it after bounding the body.
func derSignatures(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	changed := false
	if alg := r.PostForm.Get("SigAlg"); ecdsaAlgorithm(alg) {
		if sig, err := base64.StdEncoding.DecodeString(r.PostForm.Get("Signature")); err == nil {
			if der := rawECDSAToDER(sig); der != nil {
				r.PostForm.Set("Signature", base64.StdEncoding.EncodeToString(der))
				changed = true
			}
		}
	}
	if q := r.URL.RawQuery; q != "" && strings.Contains(q, "Signature=") {
		if fixed, ok := derQuerySignature(q); ok {
			r.URL.RawQuery = fixed
			changed = true
		}
	}
	if changed {
		// Form is PostForm then the query, as ParseForm builds it.
		form := url.Values{}
		for k, vs := range r.PostForm {
			form[k] = append(form[k], vs...)
		}
		if q, err := url.ParseQuery(r.URL.RawQuery); err == nil {
			for k, vs := range q {
				form[k] = append(form[k], vs...)
			}
		}
		r.Form = form
	}
	return nil
}

// derQuerySignature rewrites the Signature parameter of an HTTP-Redirect
// query whose SigAlg is ECDSA, leaving every other byte of the query (the
// signed part) as it was.
func derQuerySignature(q string) (string, bool) {
	parts := strings.Split(q, "&")
	alg, at := "", -1
	for i, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "SigAlg":
			alg, _ = url.QueryUnescape(v)
		case "Signature":
			at = i
		}
	}
	if at < 0 || !ecdsaAlgorithm(alg) {
		return q, false
	}
	_, v, _ := strings.Cut(parts[at], "=")
	s, err := url.QueryUnescape(v)
	if err != nil {
		return q, false
	}
	sig, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return q, false
	}
	der := rawECDSAToDER(sig)
	if der == nil {
		return q, false
	}
	parts[at] = "Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(der))
	return strings.Join(parts, "&"), true
}
