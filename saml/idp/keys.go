package idp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	dsig "github.com/russellhaering/goxmldsig"
)

// Signing algorithms.
const (
	// AlgRSA is RSA-2048 with RSA-SHA256 (the default).
	AlgRSA = "rsa-sha256"
	// AlgECDSA is ECDSA P-256 with ECDSA-SHA256.
	AlgECDSA = "ecdsa-sha256"
)

// ErrRotationPending is returned by Rotate when a next key is already
// published and not yet signing.
var ErrRotationPending = errors.New("idp: a key rotation is already pending")

// certValidity of generated self-signed certificates. SAML peers trust the
// key in metadata, not a CA; the validity is long so that it never expires
// under a running deployment (rotation is how keys change).
const certValidity = 20 * 365 * 24 * time.Hour

// NormalizeAlgorithm maps the flag spellings ("rsa", "ecdsa", "rsa-sha256",
// "ecdsa-sha256", "") to AlgRSA or AlgECDSA.
func NormalizeAlgorithm(s string) (string, error) {
	switch s {
	case "", "rsa", AlgRSA:
		return AlgRSA, nil
	case "ecdsa", "ec", "p256", AlgECDSA:
		return AlgECDSA, nil
	}
	return "", fmt.Errorf("signing algorithm %q: want rsa or ecdsa", s)
}

// GenerateKey makes a new key pair with a self-signed certificate naming
// commonName, signing from activeFrom.
func GenerateKey(alg, commonName string, now, activeFrom time.Time) (Key, error) {
	alg, err := NormalizeAlgorithm(alg)
	if err != nil {
		return Key{}, err
	}
	var priv crypto.Signer
	if alg == AlgECDSA {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return Key{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return Key{}, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour).UTC(),
		NotAfter:              now.Add(certValidity).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return Key{}, fmt.Errorf("self-signed certificate: %w", err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Key{}, fmt.Errorf("encode key: %w", err)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return Key{}, err
	}
	return Key{
		ID:         hex.EncodeToString(id),
		Algorithm:  alg,
		KeyPEM:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		CertPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ActiveFrom: activeFrom,
		Created:    now,
	}, nil
}

// Rotate publishes a new key of algorithm alg that starts signing at
// now+overlap, so that service providers which refresh the metadata within
// the overlap trust it before it signs. ErrRotationPending if a key that
// does not sign yet exists. When no key signs yet (a hub that never served a
// SAML request), no service provider trusts any key, so there is nothing to
// overlap with: the key signs at once (its ActiveFrom is zero, like the key
// a first start makes), rather than leaving the hub without a signing key
// for the whole overlap.
func Rotate(ctx context.Context, keys Keys, alg, commonName string, overlap time.Duration, now time.Time) (Key, error) {
	if overlap < 0 {
		return Key{}, fmt.Errorf("overlap %s: must not be negative", overlap)
	}
	existing, err := keys.SigningKeys(ctx)
	if err != nil {
		return Key{}, err
	}
	signing := false
	for _, k := range existing {
		if k.ActiveFrom.After(now) {
			return Key{}, fmt.Errorf("%w: key %s starts signing at %s", ErrRotationPending, k.ID, k.ActiveFrom.UTC().Format(time.RFC3339))
		}
		signing = true
	}
	from := now.Add(overlap)
	if !signing {
		from = time.Time{}
	}
	k, err := GenerateKey(alg, commonName, now, from)
	if err != nil {
		return Key{}, err
	}
	if err := keys.AddSigningKey(ctx, k); err != nil {
		return Key{}, fmt.Errorf("store key: %w", err)
	}
	return k, nil
}

// signingKey is a parsed Key.
type signingKey struct {
	id         string
	alg        string
	signer     crypto.Signer
	cert       *x509.Certificate
	certB64    string // cert.Raw in base64, for KeyInfo
	activeFrom time.Time
}

func newSigningKey(id, alg string, signer crypto.Signer, cert *x509.Certificate, activeFrom time.Time) *signingKey {
	return &signingKey{id: id, alg: alg, signer: signer, cert: cert, certB64: base64.StdEncoding.EncodeToString(cert.Raw), activeFrom: activeFrom}
}

func (k *signingKey) method() string {
	if k.alg == AlgECDSA {
		return dsig.ECDSASHA256SignatureMethod
	}
	return dsig.RSASHA256SignatureMethod
}

// ParseKeyPair reads a PEM private key (PKCS#8, PKCS#1 or SEC 1) and a PEM
// certificate, checks that they match and that the key is RSA (≥ 2048 bits)
// or ECDSA P-256, and returns the key's algorithm.
func ParseKeyPair(keyPEM, certPEM []byte) (crypto.Signer, *x509.Certificate, string, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, "", errors.New("key: no PEM block")
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
		return nil, nil, "", fmt.Errorf("key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, "", errors.New("certificate: no CERTIFICATE PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, "", fmt.Errorf("certificate: %w", err)
	}
	var alg string
	var signer crypto.Signer
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, nil, "", fmt.Errorf("key: RSA %d bits is too short (want ≥ 2048)", k.N.BitLen())
		}
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok || !pub.Equal(&k.PublicKey) {
			return nil, nil, "", errors.New("certificate does not match the key")
		}
		alg, signer = AlgRSA, k
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, nil, "", errors.New("key: ECDSA keys must use P-256")
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || !pub.Equal(&k.PublicKey) {
			return nil, nil, "", errors.New("certificate does not match the key")
		}
		alg, signer = AlgECDSA, k
	default:
		return nil, nil, "", fmt.Errorf("key: unsupported type %T (want RSA or ECDSA P-256)", key)
	}
	return signer, cert, alg, nil
}

// keyRing is the parsed keys, refreshed from Keys now and then.
type keyRing struct {
	keys   Keys
	static *signingKey
	alg    string
	cn     string
	ttl    time.Duration
	mu     sync.Mutex
	loaded time.Time
	ring   []*signingKey // by activeFrom
}

// current returns the key that signs at now and the keys published besides
// it (those that start signing later).
func (kr *keyRing) current(ctx context.Context, now time.Time) (*signingKey, []*signingKey, error) {
	if kr.static != nil {
		return kr.static, nil, nil
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if kr.ring == nil || now.Sub(kr.loaded) >= kr.ttl || now.Before(kr.loaded) {
		if err := kr.load(ctx, now); err != nil {
			if kr.ring == nil {
				return nil, nil, err
			}
			// Keep serving with the keys already known.
		}
	}
	var active *signingKey
	var next []*signingKey
	for _, k := range kr.ring {
		if !k.activeFrom.After(now) {
			active = k
		} else {
			next = append(next, k)
		}
	}
	if active == nil {
		return nil, nil, errors.New("no signing key is active yet")
	}
	return active, next, nil
}

// load reads the keys, creating the first one when there is none.
func (kr *keyRing) load(ctx context.Context, now time.Time) error {
	ks, err := kr.keys.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("read signing keys: %w", err)
	}
	if len(ks) == 0 {
		k, err := GenerateKey(kr.alg, kr.cn, now, time.Time{})
		if err != nil {
			return err
		}
		// Another replica may win the race; its key is then read back.
		if err := kr.keys.AddSigningKey(ctx, k); err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("store the first signing key: %w", err)
		}
		if ks, err = kr.keys.SigningKeys(ctx); err != nil {
			return fmt.Errorf("read signing keys: %w", err)
		}
	}
	ring := make([]*signingKey, 0, len(ks))
	for _, k := range ks {
		signer, cert, alg, err := ParseKeyPair(k.KeyPEM, k.CertPEM)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", k.ID, err)
		}
		ring = append(ring, newSigningKey(k.ID, alg, signer, cert, k.ActiveFrom))
	}
	kr.ring, kr.loaded = ring, now
	return nil
}
