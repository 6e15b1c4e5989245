package sp

import (
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/connectsso/connect/saml/internal/metadata"
)

// VerifyMetadataUpdate reports whether fresh IdP metadata may replace the
// pinned copy of a hub: it must name the same entity, describe an IdP, and be
// signed (enveloped, SHA-256 or better) by a signing certificate of the pinned
// metadata. A Connect hub publishes its next key in metadata before it signs
// with it, so a bridge that refreshes during a key rollover's overlap always
// trusts the new metadata and never breaks; one that missed the whole overlap
// is refused here and must be re-pinned by its operator.
func VerifyMetadataUpdate(pinned, fresh []byte) error {
	var old saml.EntityDescriptor
	if err := xml.Unmarshal(pinned, &old); err != nil {
		return fmt.Errorf("pinned metadata: %w", err)
	}
	var roots []*x509.Certificate
	for _, d := range old.IDPSSODescriptors {
		roots = append(roots, metadata.SigningCerts(d.KeyDescriptors)...)
	}
	if len(roots) == 0 {
		return errors.New("the pinned metadata has no signing certificate")
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(fresh, &ed); err != nil {
		return fmt.Errorf("new metadata: %w", err)
	}
	if ed.EntityID != old.EntityID {
		return fmt.Errorf("new metadata names entity %q, not %q", ed.EntityID, old.EntityID)
	}
	if len(ed.IDPSSODescriptors) == 0 {
		return errors.New("new metadata describes no IdP")
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(fresh); err != nil {
		return fmt.Errorf("new metadata: %w", err)
	}
	root := doc.Root()
	if root == nil || ownSignature(root) == nil {
		return errors.New("new metadata is not signed")
	}
	if m := root.FindElement("./Signature/SignedInfo/SignatureMethod"); m == nil || isSHA1(m.SelectAttrValue("Algorithm", "")) {
		return errors.New("new metadata is not signed with SHA-256 or better")
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: roots})
	vc.IdAttribute = "ID"
	if _, err := (ecdsaVerifier{}).VerifySignedElement(vc, root); err != nil {
		return fmt.Errorf("new metadata is not signed by a key of the pinned metadata: %w", err)
	}
	return nil
}

func isSHA1(alg string) bool {
	return strings.HasSuffix(alg, "rsa-sha1") || strings.HasSuffix(alg, "ecdsa-sha1") || strings.HasSuffix(alg, "dsa-sha1")
}
