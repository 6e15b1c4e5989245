package localtest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim/password"
)

func testAuthenticate(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	argon, err := password.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("old bcrypt"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, auth local.Auth, hash string) local.Account {
		a := manualAccount(name)
		a.PasswordHash = hash
		if auth == local.AuthConnect {
			a.Auth, a.Server, a.HubUserID = local.AuthConnect, "hub-a", "hub-"+name
		}
		return a
	}
	susp := mk("Suspended", local.AuthManual, argon)
	susp.Suspended = true
	del := mk("deleted", local.AuthManual, argon)
	del.Deleted = time.Now()
	as := create(t, d,
		mk("Manual", local.AuthManual, argon),
		mk("connect", local.AuthConnect, argon),
		mk("nohash", local.AuthManual, ""),
		mk("legacy", local.AuthManual, string(bc)),
		susp, del,
	)
	// A directory may refuse a hash no login could use (a Connect hub behind
	// scimtarget does); one that stores it must still refuse the login.
	if r := put(t, d, local.Put{Account: mk("garbage", local.AuthManual, "$argon2id$broken")})[0]; r.Err != nil && !errors.Is(r.Err, local.ErrInvalid) {
		t.Fatalf("put an unusable hash: %v, want success or ErrInvalid", r.Err)
	}
	if !d.Capabilities().PasswordHashes {
		// Nothing can log in locally: the hashes are not read back.
		_, err := local.Authenticate(ctx, d, "manual", "correct horse", local.AuthOptions{})
		wantErr(t, "Authenticate without stored hashes", err, local.ErrAuthFailed)
		return
	}
	tests := []struct {
		name, user, pw string
		opts           local.AuthOptions
		want           error
		id             string
	}{
		{"manual ok, case-insensitive", "MANUAL", "correct horse", local.AuthOptions{}, nil, as[0].ID},
		{"wrong password", "manual", "Hunter2-not-it", local.AuthOptions{}, local.ErrAuthFailed, ""},
		{"unknown user", "nobody", "correct horse", local.AuthOptions{}, local.ErrAuthFailed, ""},
		{"connect refused by default", "connect", "correct horse", local.AuthOptions{}, local.ErrAuthFailed, ""},
		{"connect allowed", "connect", "correct horse", local.AuthOptions{AllowConnect: true}, nil, as[1].ID},
		{"no hash", "nohash", "", local.AuthOptions{}, local.ErrAuthFailed, ""},
		{"bcrypt", "legacy", "old bcrypt", local.AuthOptions{}, nil, as[3].ID},
		{"suspended, right password", "suspended", "correct horse", local.AuthOptions{}, local.ErrSuspended, ""},
		{"suspended, wrong password", "suspended", "Hunter2-nope", local.AuthOptions{}, local.ErrAuthFailed, ""},
		{"deleted", "deleted", "correct horse", local.AuthOptions{}, local.ErrAuthFailed, ""},
		{"malformed hash", "garbage", "x", local.AuthOptions{}, local.ErrAuthFailed, ""},
		{"empty username", "", "x", local.AuthOptions{}, local.ErrAuthFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := local.Authenticate(ctx, d, tt.user, tt.pw, tt.opts)
			if tt.want != nil {
				wantErr(t, tt.name, err, tt.want)
				if a.ID != "" {
					t.Fatalf("refused login returned account %s", a.ID)
				}
				if len(tt.pw) > 2 && strings.Contains(err.Error(), tt.pw) {
					t.Fatalf("error %q carries the password", err)
				}
				return
			}
			if err != nil || a.ID != tt.id {
				t.Fatalf("Authenticate = %s, %v; want %s", a.ID, err, tt.id)
			}
		})
	}
	// The bcrypt hash of a manual account was replaced by argon2id, and still works.
	if h := get(t, d, as[3].ID).PasswordHash; !strings.HasPrefix(h, "$argon2id$") {
		t.Fatalf("legacy hash not upgraded: %.10s…", h)
	}
	if _, err := local.Authenticate(ctx, d, "legacy", "old bcrypt", local.AuthOptions{}); err != nil {
		t.Fatalf("login after rehash: %v", err)
	}
	// A connect account's hash belongs to the hub: never rewritten.
	c := connectAccount(77)
	c.PasswordHash = string(bc)
	ca := create(t, d, c)[0]
	if _, err := local.Authenticate(ctx, d, c.Username, "old bcrypt", local.AuthOptions{AllowConnect: true}); err != nil {
		t.Fatal(err)
	}
	if h := get(t, d, ca.ID).PasswordHash; h != string(bc) {
		t.Fatal("connect account's hub hash was rewritten")
	}
}
