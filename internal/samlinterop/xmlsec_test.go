package samlinterop

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"os/exec"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/connectsso/connect/internal/testenv"
)

const (
	nsProtocol     = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsAssertion    = "urn:oasis:names:tc:SAML:2.0:assertion"
	algRSASHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	algECDSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	algSHA256      = "http://www.w3.org/2001/04/xmlenc#sha256"
)

// xpathSignature selects the enveloped signature of the Response (parent
// "Response") or of its Assertion, whatever prefixes the IdP chose.
func xpathSignature(parent string) string {
	if parent == "Assertion" {
		return "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']"
	}
	return "/*[local-name()='Response']/*[local-name()='Signature']"
}

// xmlsecVerify runs `xmlsec1 --verify` on one signature of doc with the
// certificate in certPEM and returns its combined output and error.
func xmlsecVerify(tb testing.TB, xmlsec, dir, certPEM string, doc []byte, parent string) (string, error) {
	tb.Helper()
	file := writeFile(tb, dir, "response-"+parent+".xml", doc)
	cmd := exec.Command(xmlsec, "--verify",
		"--pubkey-cert-pem", certPEM,
		"--id-attr:ID", nsProtocol+":Response",
		"--id-attr:ID", nsAssertion+":Assertion",
		"--enabled-reference-uris", "same-doc",
		"--node-xpath", xpathSignature(parent),
		file)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkSignatureShape checks what xmlsec1 does not: the signature sits in the
// element it signs, references that element's ID, and uses the algorithm alg
// with a SHA-256 digest.
func checkSignatureShape(tb testing.TB, el *etree.Element, what, alg string) {
	tb.Helper()
	sig := el.SelectElement("Signature")
	if sig == nil {
		tb.Errorf("%s: no enveloped ds:Signature", what)
		return
	}
	ref := sig.FindElement("./SignedInfo/Reference")
	if ref == nil || ref.SelectAttrValue("URI", "") != "#"+el.SelectAttrValue("ID", "\x00") {
		tb.Errorf("%s: signature Reference does not point at the element's own ID %q", what, el.SelectAttrValue("ID", ""))
	}
	if m := sig.FindElement("./SignedInfo/SignatureMethod"); m == nil || m.SelectAttrValue("Algorithm", "") != alg {
		tb.Errorf("%s: SignatureMethod is not %s", what, alg)
	}
	if alg == algECDSASHA256 {
		// XML-DSig 1.1 §6.4.3: r and s, each as long as the curve order
		// (32 bytes for P-256), concatenated; not ASN.1 DER (70–72 bytes).
		var text string
		if v := sig.SelectElement("SignatureValue"); v != nil {
			text = v.Text()
		}
		raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
		if err != nil || len(raw) != 64 {
			tb.Errorf("%s: ECDSA P-256 SignatureValue is %d bytes, want 64 (r || s); DER-encoded?", what, len(raw))
		}
	}
	if d := sig.FindElement("./SignedInfo/Reference/DigestMethod"); d == nil || d.SelectAttrValue("Algorithm", "") != algSHA256 {
		tb.Errorf("%s: DigestMethod is not SHA-256", what)
	}
}

// TestXmlsec1: xmlsec1 (the reference C implementation of XML-DSig) verifies
// the signature of the hub's Response and that of its Assertion with the IdP
// certificate published in metadata, and refuses both once the NameID is
// altered.
func TestXmlsec1(t *testing.T) {
	xmlsec := testenv.Binary(t, "xmlsec1")
	h := startHub(t)
	u := h.createUser(t, ada())
	verifyWithXmlsec1(t, xmlsec, h, algRSASHA256, u.UserName, u.Password)
}

// verifyWithXmlsec1 logs in through a gosaml2 SP registered with provider and
// checks the response's two signatures (made with alg) with xmlsec1.
func verifyWithXmlsec1(t *testing.T, xmlsec string, provider idp, alg, user, password string) {
	_, certs := parseIdPMetadata(t, fetch(t, provider.MetadataURL()))
	dir := t.TempDir()
	samlResponse, res := goSPLogin(t, provider, false, user, password)
	if !res.OK {
		t.Errorf("gosaml2 SP refused the response too: %v", res.Errors)
	}
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		t.Fatalf("SAMLResponse is not base64: %v", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatalf("SAMLResponse is not XML: %v", err)
	}
	resp := doc.Root()
	assertion := resp.SelectElement("Assertion")
	if resp == nil || resp.Tag != "Response" || assertion == nil {
		t.Fatalf("not a Response with an Assertion:\n%s", raw)
	}
	checkSignatureShape(t, resp, "Response", alg)
	checkSignatureShape(t, assertion, "Assertion", alg)

	nameID := assertion.FindElement("./Subject/NameID")
	if nameID == nil {
		t.Fatalf("no Subject/NameID:\n%s", raw)
	}
	tampered := bytes.Replace(raw, []byte(">"+nameID.Text()+"<"), []byte(">someone-else<"), 1)
	if bytes.Equal(tampered, raw) {
		t.Fatal("could not alter the NameID")
	}
	// With several certificates in metadata (a rollover in progress), one of
	// them must verify.
	for _, parent := range []string{"Response", "Assertion"} {
		var ok bool
		var outs []string
		for _, c := range certs {
			f := writeFile(t, dir, "idp-"+c.SerialNumber.String()+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
			out, err := xmlsecVerify(t, xmlsec, dir, f, raw, parent)
			outs = append(outs, out)
			if err == nil && strings.Contains(out, "OK") {
				ok = true
				if out, err := xmlsecVerify(t, xmlsec, dir, f, tampered, parent); err == nil {
					t.Errorf("xmlsec1 verified the %s signature after the NameID was altered:\n%s", parent, out)
				}
			}
		}
		if !ok {
			t.Errorf("xmlsec1 --verify of the %s signature failed with every metadata certificate:\n%s\nresponse:\n%s",
				parent, strings.Join(outs, "\n"), raw)
		}
	}
}

// TestECDSA: with `--saml-signing ecdsa` (a P-256 key), the hub's signatures
// verify in xmlsec1 and in python3-onelogin-saml2 (strict), which read an
// ECDSA SignatureValue as XML-DSig 1.1 §6.4.3 (RFC 4050) defines it: the
// 64-byte concatenation r || s, not an ASN.1 DER sequence.
func TestECDSA(t *testing.T) {
	xmlsec := testenv.Binary(t, "xmlsec1")
	h := startHub(t, "--saml-signing", "ecdsa")
	u := h.createUser(t, ada())
	t.Run("xmlsec1", func(t *testing.T) {
		verifyWithXmlsec1(t, xmlsec, h, algECDSASHA256, u.UserName, u.Password)
	})
	t.Run("onelogin", func(t *testing.T) {
		res := pySPLogin(t, h, "onelogin_sp.py", false, u.UserName, u.Password)
		if !res.OK {
			t.Fatalf("onelogin refused the hub's ECDSA-signed response: %v (%s)", res.Errors, res.Reason)
		}
		checkIdentity(t, "onelogin", res.NameID, res.NameIDFormat, res.Attributes, u)
	})
}
