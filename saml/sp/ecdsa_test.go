package sp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// rawSigner signs as XML-DSig 1.1 says ECDSA must: r || s.
type rawSigner struct{ *ecdsa.PrivateKey }

func (r rawSigner) Sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	der, err := r.PrivateKey.Sign(rnd, digest, opts)
	if err != nil {
		return nil, err
	}
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}

func ecdsaCert(tb testing.TB) (*ecdsa.PrivateKey, *x509.Certificate) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hub"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

func TestRawECDSAToDER(t *testing.T) {
	key, _ := ecdsaCert(t)
	digest := sha256.Sum256([]byte("signed"))
	raw, err := rawSigner{key}.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	der := rawECDSAToDER(raw)
	if der == nil || !ecdsa.VerifyASN1(&key.PublicKey, digest[:], der) {
		t.Fatalf("r || s not converted to a valid DER signature: %x", der)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"DER already", der},
		{"odd length", raw[:63]},
		{"not a curve size", make([]byte, 70)},
		{"empty", nil},
	} {
		if got := rawECDSAToDER(tc.in); got != nil {
			t.Errorf("%s: converted to %x, want untouched", tc.name, got)
		}
	}
}

// TestECDSAVerifierNested signs an inner element and then the outer one
// holding it, both with r || s, as a hub signs its Assertion and Response:
// the verifier accepts both, plain dsig accepts neither, and a changed byte
// is refused.
func TestECDSAVerifierNested(t *testing.T) {
	key, cert := ecdsaCert(t)
	sc, err := dsig.NewSigningContext(rawSigner{key}, [][]byte{cert.Raw})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.SetSignatureMethod(dsig.ECDSASHA256SignatureMethod); err != nil {
		t.Fatal(err)
	}
	sc.IdAttribute = "ID"
	inner := etree.NewElement("Inner")
	inner.CreateAttr("ID", "i1")
	inner.SetText("alice")
	signedInner, err := sc.SignEnveloped(inner)
	if err != nil {
		t.Fatal(err)
	}
	outer := etree.NewElement("Outer")
	outer.CreateAttr("ID", "o1")
	outer.AddChild(signedInner)
	so, err := sc.SignEnveloped(outer)
	if err != nil {
		t.Fatal(err)
	}
	// As received: serialized and parsed (the namespace declarations of
	// the nested Signature settle only then).
	doc := etree.NewDocument()
	doc.SetRoot(so)
	wire, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	doc = etree.NewDocument()
	if err := doc.ReadFromBytes(wire); err != nil {
		t.Fatal(err)
	}
	signedOuter := doc.Root()
	vc := func() *dsig.ValidationContext {
		v := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
		v.IdAttribute = "ID"
		return v
	}
	if _, err := vc().Validate(signedOuter.Copy()); err == nil {
		t.Fatal("goxmldsig now verifies r || s: ecdsaVerifier can go")
	}
	got, err := ecdsaVerifier{}.VerifySignedElement(vc(), signedOuter.Copy())
	if err != nil {
		t.Fatalf("outer: %v", err)
	}
	in := got.FindElement("./Inner")
	if in == nil {
		t.Fatal("verified outer element lost its inner element")
	}
	if _, err := (ecdsaVerifier{}).VerifySignedElement(vc(), in.Copy()); err != nil {
		t.Fatalf("inner: %v", err)
	}
	tampered := signedOuter.Copy()
	tampered.FindElement("./Inner").SetText("mallory")
	if _, err := (ecdsaVerifier{}).VerifySignedElement(vc(), tampered); err == nil {
		t.Fatal("a changed signed element was accepted")
	}
}

func TestDERQuerySignature(t *testing.T) {
	key, _ := ecdsaCert(t)
	digest := sha256.Sum256([]byte("q"))
	raw, _ := rawSigner{key}.Sign(rand.Reader, digest[:], crypto.SHA256)
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(raw))
	signed := "SAMLResponse=abc%2B&RelayState=r&SigAlg=" + url.QueryEscape(dsig.ECDSASHA256SignatureMethod)
	got, ok := derQuerySignature(signed + "&Signature=" + sig)
	if !ok || !strings.HasPrefix(got, signed+"&Signature=") {
		t.Fatalf("converted query %q (%v): the signed part must stay byte for byte", got, ok)
	}
	v, _ := url.ParseQuery(got)
	der, _ := base64.StdEncoding.DecodeString(v.Get("Signature"))
	if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], der) {
		t.Fatal("converted query signature does not verify")
	}
	rsa := "SAMLResponse=abc&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod) + "&Signature=" + sig
	if got, ok := derQuerySignature(rsa); ok || got != rsa {
		t.Fatalf("an RSA query was changed: %q", got)
	}
}
