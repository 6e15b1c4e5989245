package sso

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/saml/sp"
)

// The SP key pair is one record of the bridge's records store: every replica
// on that store signs with it and the hubs pin its certificate.
const (
	recordKind = "sso"
	recordKey  = "sp-key"
)

type keyRecord struct {
	Key  []byte `json:"key"`
	Cert []byte `json:"cert"`
}

// LoadKeyPair returns the stored SP key pair (PEM). It wraps local.ErrNotFound
// when none was made yet.
func LoadKeyPair(ctx context.Context, r bridge.Records) (keyPEM, certPEM []byte, err error) {
	rec, err := r.GetRecord(ctx, recordKind, recordKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sp key pair: %w", err)
	}
	var kr keyRecord
	if err := json.Unmarshal(rec.Value, &kr); err != nil || len(kr.Key) == 0 || len(kr.Cert) == 0 {
		return nil, nil, fmt.Errorf("sp key pair record unreadable: %v", err)
	}
	return kr.Key, kr.Cert, nil
}

// EnsureKeyPair returns the stored SP key pair, making and storing one
// (sp.NewKeyPair, naming commonName) when there is none. Two replicas starting
// at the same moment on an empty store may both make one; the last write wins
// and every replica picks it up through KeySource (the hub then pins the
// certificate the handshake sends, which is read from the store too).
func EnsureKeyPair(ctx context.Context, r bridge.Records, commonName string, now time.Time) (keyPEM, certPEM []byte, err error) {
	keyPEM, certPEM, err = LoadKeyPair(ctx, r)
	if err == nil || !errors.Is(err, local.ErrNotFound) {
		return keyPEM, certPEM, err
	}
	keyPEM, certPEM, err = sp.NewKeyPair(commonName, now)
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(keyRecord{Key: keyPEM, Cert: certPEM})
	if err != nil {
		return nil, nil, err
	}
	if err := r.PutRecord(ctx, local.Record{Kind: recordKind, Key: recordKey, Value: b}); err != nil {
		return nil, nil, fmt.Errorf("store sp key pair: %w", err)
	}
	return LoadKeyPair(ctx, r)
}

// KeySource reads the stored key pair, reusing it for TTL.
type KeySource struct {
	Records bridge.Records
	TTL     time.Duration
	Clock   func() time.Time

	mu        sync.Mutex
	at        time.Time
	key, cert []byte
}

// KeyPair returns the stored key pair (cached).
func (k *KeySource) KeyPair(ctx context.Context) (keyPEM, certPEM []byte, err error) {
	now := k.Clock()
	k.mu.Lock()
	if k.key != nil && now.Sub(k.at) < k.TTL {
		defer k.mu.Unlock()
		return k.key, k.cert, nil
	}
	k.mu.Unlock()
	key, cert, err := LoadKeyPair(ctx, k.Records)
	if err != nil {
		return nil, nil, err
	}
	k.mu.Lock()
	k.key, k.cert, k.at = key, cert, now
	k.mu.Unlock()
	return key, cert, nil
}
