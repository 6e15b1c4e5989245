// Package metadata holds what both sides of Connect's SAML — the hub's IdP
// (saml/idp) and the bridge's SP (saml/sp) — read out of a peer's SAML
// metadata the same way.
package metadata

import (
	"crypto/x509"
	"encoding/base64"
	"strings"

	"github.com/crewjam/saml"
)

// SigningCerts returns the certificates of the key descriptors meant for
// signing (use "signing" or no use). Certificates that do not decode or
// parse are skipped: the caller decides whether none left is an error.
func SigningCerts(kds []saml.KeyDescriptor) []*x509.Certificate {
	var out []*x509.Certificate
	for _, kd := range kds {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
			if err != nil {
				continue
			}
			if cert, err := x509.ParseCertificate(raw); err == nil {
				out = append(out, cert)
			}
		}
	}
	return out
}
