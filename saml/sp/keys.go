package sp

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	dsig "github.com/russellhaering/goxmldsig"
)

// keyPair is a parsed SP key pair.
type keyPair struct {
	signer crypto.Signer
	cert   *x509.Certificate
	// method is the XML signature method matching the key (SHA-256).
	method string
}

// parseKeyPair reads a PEM private key (PKCS#8, PKCS#1 or SEC1) and a PEM
// certificate and checks they belong together.
func parseKeyPair(keyPEM, certPEM []byte) (keyPair, error) {
	if len(keyPEM) == 0 || len(certPEM) == 0 {
		return keyPair{}, errors.New("key and certificate are required")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return keyPair{}, errors.New("key: no PEM block")
	}
	var key any
	var err error
	switch kb.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		return keyPair{}, fmt.Errorf("key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return keyPair{}, errors.New("certificate: no CERTIFICATE PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return keyPair{}, fmt.Errorf("certificate: %w", err)
	}
	kp := keyPair{cert: cert}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return keyPair{}, fmt.Errorf("key: RSA %d bits, want at least 2048", k.N.BitLen())
		}
		kp.signer, kp.method = k, dsig.RSASHA256SignatureMethod
	case *ecdsa.PrivateKey:
		kp.signer, kp.method = k, dsig.ECDSASHA256SignatureMethod
	default:
		return keyPair{}, fmt.Errorf("key: %T unsupported, want RSA or ECDSA", key)
	}
	pub, err := x509.MarshalPKIXPublicKey(kp.signer.Public())
	if err != nil {
		return keyPair{}, fmt.Errorf("key: %w", err)
	}
	if !bytes.Equal(pub, cert.RawSubjectPublicKeyInfo) {
		return keyPair{}, errors.New("the certificate is not the key's")
	}
	return kp, nil
}

// NewKeyPair makes an RSA-2048 SP key pair with a self-signed certificate
// naming commonName (the bridge's host), valid from now for 20 years: SAML
// peers trust the key in metadata, not a CA, and rotation is how it changes.
// It returns PEM (PKCS#8 key, X.509 certificate).
func NewKeyPair(commonName string, now time.Time) (keyPEM, certPEM []byte, err error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour).UTC(),
		NotAfter:              now.Add(20 * 365 * 24 * time.Hour).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
