package sso

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/saml/sp"
)

// Sessions adapts the bridge state to sp.Sessions and sp.ReplayCache.
type Sessions struct {
	State state.State
}

var (
	_ sp.Sessions    = Sessions{}
	_ sp.ReplayCache = Sessions{}
)

// PutSession implements sp.Sessions.
func (s Sessions) PutSession(ctx context.Context, ss sp.StoredSession, ttl time.Duration) error {
	return s.State.PutSession(ctx, state.Session{ID: ss.ID, Hub: ss.Hub, Subject: ss.Subject, Data: ss.Data}, ttl)
}

// GetSession implements sp.Sessions; a missing session matches sp.ErrNotFound.
func (s Sessions) GetSession(ctx context.Context, id string) (sp.StoredSession, error) {
	ss, err := s.State.GetSession(ctx, id)
	if errors.Is(err, state.ErrNotFound) {
		return sp.StoredSession{}, fmt.Errorf("%w: %w", sp.ErrNotFound, err)
	}
	if err != nil {
		return sp.StoredSession{}, err
	}
	return sp.StoredSession{ID: ss.ID, Hub: ss.Hub, Subject: ss.Subject, Data: ss.Data, Expires: ss.Expires}, nil
}

// DeleteSession implements sp.Sessions.
func (s Sessions) DeleteSession(ctx context.Context, id string) error {
	return s.State.DeleteSession(ctx, id)
}

// DeleteSessions implements sp.Sessions.
func (s Sessions) DeleteSessions(ctx context.Context, hub, subject string) (int, error) {
	return s.State.DeleteSessions(ctx, hub, subject)
}

// Seen implements sp.ReplayCache.
func (s Sessions) Seen(ctx context.Context, hub, id string, expiry time.Time) (bool, error) {
	return s.State.Seen(ctx, hub, id, expiry)
}
