package idp

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
)

// rawECDSASigner makes an ECDSA key sign the way XML Signature requires.
//
// goxmldsig v1.6.1 (under crewjam/saml) writes whatever crypto.Signer returns
// into SignatureValue, and crypto/ecdsa returns an ASN.1 DER sequence. XML
// Signature 1.1 §6.4.3 (and RFC 4051 §3.3) define the ECDSA SignatureValue as
// the octet string r || s, each left-padded to the curve size; xmlsec1,
// python3-onelogin-saml2 and Shibboleth reject DER. This wrapper converts, so
// SPs we did not write verify our signatures.
type rawECDSASigner struct {
	crypto.Signer
	size int // bytes per integer (32 for P-256)
}

// xmldsigSigner returns s, wrapped when it is an ECDSA key.
func xmldsigSigner(s crypto.Signer) crypto.Signer {
	if pub, ok := s.Public().(*ecdsa.PublicKey); ok {
		return rawECDSASigner{Signer: s, size: (pub.Curve.Params().BitSize + 7) / 8}
	}
	return s
}

// Sign implements crypto.Signer.
func (r rawECDSASigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	der, err := r.Signer.Sign(rand, digest, opts)
	if err != nil {
		return nil, err
	}
	return derToRaw(der, r.size)
}

func derToRaw(der []byte, size int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil {
		return nil, errors.New("ecdsa: malformed signature")
	}
	if sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || len(sig.R.Bytes()) > size || len(sig.S.Bytes()) > size {
		return nil, errors.New("ecdsa: signature out of range")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}

// rawToDER is the inverse of derToRaw.
func rawToDER(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, errors.New("ecdsa: malformed raw signature")
	}
	n := len(raw) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:])})
}

// logoutStateCookie is crewjam's cookie carrying a propagated logout's
// state, signed with the IdP's Signer.
const logoutStateCookie = "saml_idp_logout"

// derLogoutState rewrites the signature of crewjam's logout-state cookie
// from r || s back to DER as it is set: crewjam signs that cookie with the
// same Signer as XML but verifies it with ecdsa.VerifyASN1. Only the ECDSA
// path needs it.
type derLogoutState struct {
	http.ResponseWriter
	done bool
}

func (d *derLogoutState) fix() {
	if d.done {
		return
	}
	d.done = true
	h := d.ResponseWriter.Header()
	cookies := h.Values("Set-Cookie")
	for i, c := range cookies {
		rest, ok := strings.CutPrefix(c, logoutStateCookie+"=")
		if !ok {
			continue
		}
		value, attrs, _ := strings.Cut(rest, ";")
		payload, sig, ok := strings.Cut(value, ".")
		if !ok {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		der, err := rawToDER(raw)
		if err != nil {
			continue
		}
		c = logoutStateCookie + "=" + payload + "." + base64.RawURLEncoding.EncodeToString(der)
		if attrs != "" {
			c += ";" + attrs
		}
		cookies[i] = c
	}
	if len(cookies) > 0 {
		h["Set-Cookie"] = cookies
	}
}

func (d *derLogoutState) WriteHeader(code int) {
	d.fix()
	d.ResponseWriter.WriteHeader(code)
}

func (d *derLogoutState) Write(b []byte) (int, error) {
	d.fix()
	return d.ResponseWriter.Write(b)
}

func (d *derLogoutState) Unwrap() http.ResponseWriter { return d.ResponseWriter }
