package sso

import (
	"context"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/saml/sp"
)

// Hubs lists the servers connected with the handshake (those with a HubLink):
// a server added with `servers add-manual` is a sync source only, never
// trusted for SSO. Each hub gets the stored SP key pair, so a replica that
// started with another key (see EnsureKeyPair) still signs with the shared
// one.
type Hubs struct {
	Records bridge.Records
	Keys    *KeySource
}

var _ sp.Hubs = (*Hubs)(nil)

// Hubs implements sp.Hubs, in the order of the servers (by id).
func (h *Hubs) Hubs(ctx context.Context) ([]sp.Hub, error) {
	servers, err := bridge.ListServers(ctx, h.Records)
	if err != nil {
		return nil, err
	}
	var key, cert []byte
	out := make([]sp.Hub, 0, len(servers))
	for _, s := range servers {
		if s.Hub == nil || len(s.Hub.Metadata) == 0 {
			continue
		}
		if key == nil && h.Keys != nil {
			if key, cert, err = h.Keys.KeyPair(ctx); err != nil {
				return nil, err
			}
		}
		out = append(out, sp.Hub{ID: s.ID, Name: s.Name, Metadata: s.Hub.Metadata, KeyPEM: key, CertPEM: cert})
	}
	return out, nil
}
