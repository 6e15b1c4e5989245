package sso

import (
	"context"
	"sync"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/saml/sp"
)

// Hubs lists the servers connected with the handshake (those with a HubLink):
// a server added with `servers add-manual` is a sync source only, never
// trusted for SSO. Each hub gets the stored SP key pair, so a replica that
// started with another key (see EnsureKeyPair) still signs with the shared
// one.
//
// The SP asks on every login and logout message; the list is reused for TTL
// (default 1 s: decoding the pinned metadata of every server was a tenth of
// a login's cost), so a hub connected or removed, here or on another
// replica, is seen within it.
type Hubs struct {
	Records bridge.Records
	Keys    *KeySource
	TTL     time.Duration
	Clock   func() time.Time

	mu   sync.Mutex
	at   time.Time
	hubs []sp.Hub
}

var _ sp.Hubs = (*Hubs)(nil)

// Hubs implements sp.Hubs, in the order of the servers (by id).
func (h *Hubs) Hubs(ctx context.Context) ([]sp.Hub, error) {
	now := time.Now()
	if h.Clock != nil {
		now = h.Clock()
	}
	ttl := h.TTL
	if ttl == 0 {
		ttl = time.Second
	}
	h.mu.Lock()
	if h.hubs != nil && now.Sub(h.at) < ttl && !now.Before(h.at) {
		defer h.mu.Unlock()
		return h.hubs, nil
	}
	h.mu.Unlock()
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
	h.mu.Lock()
	h.hubs, h.at = out, now
	h.mu.Unlock()
	return out, nil
}

// Forget drops the cached list (this process changed the servers).
func (h *Hubs) Forget() {
	h.mu.Lock()
	h.hubs = nil
	h.mu.Unlock()
}
