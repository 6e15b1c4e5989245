package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/scim"
)

// TestRegisterRefusesUnboundedFields: what a hub sends is stored and later
// shown (the hub's name on the login page and in `servers list`, ids in
// logs), so names and ids are bounded and free of control characters (a
// terminal escape in a name would rewrite an operator's screen). A refused
// request is 400 bad_request, stores nothing and leaves the secret usable.
func TestRegisterRefusesUnboundedFields(t *testing.T) {
	b := startInBridge(t)
	secret := b.secret(t, time.Hour)
	good := scim.RegisterRequest{
		Secret: secret, HubID: "hub-1", HubName: "Hub", HubURL: "http://127.0.0.1:1",
		EntityID: "http://127.0.0.1:1/saml/metadata", MetadataURL: "http://127.0.0.1:1/saml/metadata",
		SCIMURL: "http://127.0.0.1:1/scim/v2", ClientID: "client-1", Token: "cbr_token",
	}
	for _, tt := range []struct {
		name string
		mod  func(*scim.RegisterRequest)
	}{
		{"escape in hub name", func(r *scim.RegisterRequest) { r.HubName = "Hub\x1b[2J\x1b[Hpwned" }},
		{"newline in hub name", func(r *scim.RegisterRequest) { r.HubName = "Hub\nINFO forged log line" }},
		{"long hub name", func(r *scim.RegisterRequest) { r.HubName = strings.Repeat("h", 201) }},
		{"long hub id", func(r *scim.RegisterRequest) { r.HubID = strings.Repeat("i", 201) }},
		{"control in hub id", func(r *scim.RegisterRequest) { r.HubID = "hub\x00" }},
		{"long client id", func(r *scim.RegisterRequest) { r.ClientID = strings.Repeat("c", 201) }},
		{"long token", func(r *scim.RegisterRequest) { r.Token = strings.Repeat("t", 513) }},
		{"space in token", func(r *scim.RegisterRequest) { r.Token = "cbr token" }},
		{"long entity id", func(r *scim.RegisterRequest) { r.EntityID = "http://127.0.0.1:1/" + strings.Repeat("e", 2048) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := good
			tt.mod(&req)
			body, _ := json.Marshal(req)
			res, err := http.Post(b.url+scim.RegisterPath, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var he scim.HandshakeError
			_ = json.NewDecoder(res.Body).Decode(&he)
			if res.StatusCode != http.StatusBadRequest || he.Code != scim.HandshakeBadRequest {
				t.Fatalf("status %d code %q (%s), want 400 %s", res.StatusCode, he.Code, he.Message, scim.HandshakeBadRequest)
			}
			if ss := b.servers(t); len(ss) != 0 {
				t.Fatalf("stored %d server(s)", len(ss))
			}
		})
	}
	// The secret was never taken: a good request gets past it (and fails
	// only at the unreachable metadata URL, putting it back).
	body, _ := json.Marshal(good)
	res, err := http.Post(b.url+scim.RegisterPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var he scim.HandshakeError
	_ = json.NewDecoder(res.Body).Decode(&he)
	if he.Code != scim.HandshakeHubUnreachable {
		t.Fatalf("good request: %d %q %s, want %s", res.StatusCode, he.Code, he.Message, scim.HandshakeHubUnreachable)
	}
}

// TestSetupSecretLifetimeBounded: a setup secret is a short-lived credential
// (DESIGN.md §5); one that outlives a week is refused rather than made.
func TestSetupSecretLifetimeBounded(t *testing.T) {
	b := startInBridge(t)
	if _, err := bridge.NewSetupSecret(context.Background(), b.dir, bridge.MaxSetupSecretTTL+time.Second, time.Now()); err == nil {
		t.Fatal("a setup secret valid for more than MaxSetupSecretTTL was made")
	}
	if _, err := bridge.NewSetupSecret(context.Background(), b.dir, bridge.MaxSetupSecretTTL, time.Now()); err != nil {
		t.Fatalf("MaxSetupSecretTTL: %v", err)
	}
}
