package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// RunIdP runs the conformance suite of the optional store.IdP ability.
// newStore returns an empty store that implements it.
func RunIdP(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store, idp store.IdP)
	}{
		{"Sessions", testIdPSessions},
		{"SessionParticipants", testIdPParticipants},
		{"ExpiredSessions", testIdPExpiredSessions},
		{"ServiceProviders", testIdPServiceProviders},
		{"SigningKeys", testIdPSigningKeys},
		{"SigningKeyRace", testIdPSigningKeyRace},
		{"LoginThrottle", testIdPLoginThrottle},
		{"LoginThrottleConcurrent", testIdPLoginThrottleConcurrent},
		{"UserGroupNames", testIdPUserGroupNames},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			idp, ok := s.(store.IdP)
			if !ok {
				t.Fatalf("%T does not implement store.IdP", s)
			}
			tt.fn(t, s, idp)
		})
	}
}

func sessionHash(i int) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "session-%d", i))
	return h[:]
}

// t0 is a fixed time with microsecond precision (what the store keeps).
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)

func testIdPSessions(t *testing.T, _ store.Store, s store.IdP) {
	ctx := ctxFor(t)
	a := store.IdPSession{Hash: sessionHash(1), Index: "_i1", UserID: "u1", Created: t0, Expires: t0.Add(time.Hour)}
	b := store.IdPSession{Hash: sessionHash(2), Index: "_i2", UserID: "u1", Created: t0.Add(time.Minute), Expires: t0.Add(2 * time.Hour)}
	c := store.IdPSession{Hash: sessionHash(3), Index: "_i3", UserID: "u2", Created: t0, Expires: t0.Add(time.Hour)}
	for _, x := range []store.IdPSession{a, b, c} {
		if err := s.CreateIdPSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "duplicate hash", s.CreateIdPSession(ctx, a), store.ErrConflict)
	wantErr(t, "no user", s.CreateIdPSession(ctx, store.IdPSession{Hash: sessionHash(9), Expires: t0}), store.ErrInvalid)
	wantErr(t, "no hash", s.CreateIdPSession(ctx, store.IdPSession{UserID: "u", Expires: t0}), store.ErrInvalid)

	got, err := s.IdPSession(ctx, a.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("IdPSession (-want +got):\n%s", diff)
	}
	_, err = s.IdPSession(ctx, sessionHash(99))
	wantErr(t, "unknown session", err, store.ErrNotFound)

	of, err := s.IdPSessionsOfUser(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.IdPSession{a, b}, of); diff != "" {
		t.Errorf("IdPSessionsOfUser (-want +got):\n%s", diff)
	}
	if err := s.DeleteIdPSession(ctx, a.Hash); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteIdPSession(ctx, a.Hash); err != nil {
		t.Fatalf("deleting a deleted session: %v", err)
	}
	_, err = s.IdPSession(ctx, a.Hash)
	wantErr(t, "deleted session", err, store.ErrNotFound)
	if _, err := s.IdPSession(ctx, b.Hash); err != nil {
		t.Fatalf("other session: %v", err)
	}
}

func testIdPParticipants(t *testing.T, _ store.Store, s store.IdP) {
	ctx := ctxFor(t)
	h := sessionHash(1)
	if err := s.CreateIdPSession(ctx, store.IdPSession{Hash: h, Index: "_i", UserID: "u1", Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	p1 := store.IdPParticipant{ServiceProvider: "https://sp1", NameID: "u1", NameIDFormat: "persistent", NameQualifier: "idp", SPNameQualifier: "https://sp1", SessionIndex: "_i"}
	p2 := store.IdPParticipant{ServiceProvider: "https://sp2", NameID: "u1", SessionIndex: "_i"}
	for _, p := range []store.IdPParticipant{p1, p2, p1} {
		if err := s.AddIdPSessionParticipant(ctx, h, p); err != nil {
			t.Fatal(err)
		}
	}
	p2b := p2
	p2b.NameIDFormat = "changed"
	if err := s.AddIdPSessionParticipant(ctx, h, p2b); err != nil {
		t.Fatal(err)
	}
	got, err := s.IdPSessionParticipants(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.IdPParticipant{p1, p2b}, got); diff != "" {
		t.Errorf("participants (-want +got):\n%s", diff)
	}
	wantErr(t, "participant of unknown session", s.AddIdPSessionParticipant(ctx, sessionHash(7), p1), store.ErrNotFound)
	wantErr(t, "participant without SP", s.AddIdPSessionParticipant(ctx, h, store.IdPParticipant{}), store.ErrInvalid)
	if err := s.DeleteIdPSession(ctx, h); err != nil {
		t.Fatal(err)
	}
	got, err = s.IdPSessionParticipants(ctx, h)
	if err != nil || len(got) != 0 {
		t.Fatalf("participants after delete: %v %v", got, err)
	}
	// A new session with the same hash starts without participants.
	if err := s.CreateIdPSession(ctx, store.IdPSession{Hash: h, Index: "_j", UserID: "u1", Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.IdPSessionParticipants(ctx, h); len(got) != 0 {
		t.Fatalf("participants leaked into a new session: %v", got)
	}
}

func testIdPExpiredSessions(t *testing.T, _ store.Store, s store.IdP) {
	ctx := ctxFor(t)
	for i := range 5 {
		ses := store.IdPSession{Hash: sessionHash(i), Index: "_x", UserID: "u", Created: t0, Expires: t0.Add(time.Duration(i) * time.Hour)}
		if err := s.CreateIdPSession(ctx, ses); err != nil {
			t.Fatal(err)
		}
		if err := s.AddIdPSessionParticipant(ctx, ses.Hash, store.IdPParticipant{ServiceProvider: "sp"}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpiredIdPSessions(ctx, t0.Add(2*time.Hour+time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("deleted %d, want 3", n)
	}
	left, _ := s.IdPSessionsOfUser(ctx, "u")
	if len(left) != 2 || !bytes.Equal(left[0].Hash, sessionHash(3)) && !bytes.Equal(left[1].Hash, sessionHash(3)) {
		t.Fatalf("left: %v", left)
	}
	if ps, _ := s.IdPSessionParticipants(ctx, sessionHash(0)); len(ps) != 0 {
		t.Fatalf("participants of an expired session survived: %v", ps)
	}
}

func testIdPServiceProviders(t *testing.T, _ store.Store, s store.IdP) {
	ctx := ctxFor(t)
	a, err := s.CreateServiceProvider(ctx, store.ServiceProvider{EntityID: "https://b.example/sp", Metadata: []byte("<md a/>"), Source: "a.xml"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Created.IsZero() || !a.Created.Equal(a.Modified) {
		t.Fatalf("timestamps: %+v", a)
	}
	if _, err := s.CreateServiceProvider(ctx, store.ServiceProvider{EntityID: "https://a.example/sp", Metadata: []byte("<md b/>"), ClientID: "c1"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateServiceProvider(ctx, store.ServiceProvider{EntityID: "https://b.example/sp", Metadata: []byte("x")})
	wantErr(t, "duplicate entity id", err, store.ErrConflict)
	_, err = s.CreateServiceProvider(ctx, store.ServiceProvider{EntityID: "x"})
	wantErr(t, "no metadata", err, store.ErrInvalid)
	// Entity IDs compare exactly.
	_, err = s.ServiceProvider(ctx, "HTTPS://b.example/sp")
	wantErr(t, "case-different entity id", err, store.ErrNotFound)

	got, err := s.ServiceProvider(ctx, "https://b.example/sp")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Metadata) != "<md a/>" || got.Source != "a.xml" || got.ClientID != "" {
		t.Fatalf("got %+v", got)
	}
	r, err := s.ReplaceServiceProvider(ctx, store.ServiceProvider{EntityID: "https://b.example/sp", Metadata: []byte("<md c/>"), Source: "c.xml"})
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Metadata) != "<md c/>" || !r.Created.Equal(a.Created) {
		t.Fatalf("replaced: %+v", r)
	}
	_, err = s.ReplaceServiceProvider(ctx, store.ServiceProvider{EntityID: "nope", Metadata: []byte("x")})
	wantErr(t, "replace unknown", err, store.ErrNotFound)

	list, err := s.ListServiceProviders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sp := range list {
		ids = append(ids, sp.EntityID)
	}
	if diff := cmp.Diff([]string{"https://a.example/sp", "https://b.example/sp"}, ids); diff != "" {
		t.Errorf("list order (-want +got):\n%s", diff)
	}
	if err := s.DeleteServiceProvider(ctx, "https://a.example/sp"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete twice", s.DeleteServiceProvider(ctx, "https://a.example/sp"), store.ErrNotFound)
	_, err = s.ServiceProvider(ctx, "https://a.example/sp")
	wantErr(t, "deleted", err, store.ErrNotFound)
}

func testIdPSigningKeys(t *testing.T, _ store.Store, s store.IdP) {
	ctx := ctxFor(t)
	first := store.SigningKey{ID: "k1", Algorithm: "rsa-sha256", KeyPEM: []byte("key1"), CertPEM: []byte("cert1"), Created: t0}
	next := store.SigningKey{ID: "k2", Algorithm: "ecdsa-sha256", KeyPEM: []byte("key2"), CertPEM: []byte("cert2"), ActiveFrom: t0.Add(24 * time.Hour), Created: t0}
	for _, k := range []store.SigningKey{next, first} {
		if err := s.AddSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "same id", s.AddSigningKey(ctx, store.SigningKey{ID: "k1", Algorithm: "a", KeyPEM: []byte("k"), CertPEM: []byte("c"), ActiveFrom: t0}), store.ErrConflict)
	wantErr(t, "same start", s.AddSigningKey(ctx, store.SigningKey{ID: "k3", Algorithm: "a", KeyPEM: []byte("k"), CertPEM: []byte("c"), ActiveFrom: next.ActiveFrom}), store.ErrConflict)
	wantErr(t, "no key", s.AddSigningKey(ctx, store.SigningKey{ID: "k4", Algorithm: "a", CertPEM: []byte("c")}), store.ErrInvalid)
	got, err := s.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.SigningKey{first, next}, got); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if err := s.DeleteSigningKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete twice", s.DeleteSigningKey(ctx, "k1"), store.ErrNotFound)
}

// testIdPSigningKeyRace: replicas creating the first key at once keep one.
func testIdPSigningKeyRace(t *testing.T, _ store.Store, s store.IdP) {
	ctx := ctxFor(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.AddSigningKey(ctx, store.SigningKey{ID: fmt.Sprintf("k%d", i), Algorithm: "rsa-sha256", KeyPEM: []byte("k"), CertPEM: []byte("c"), Created: t0})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			wantErr(t, "racing first key", err, store.ErrConflict)
		}
	}
	keys, err := s.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 || len(keys) != 1 {
		t.Fatalf("%d inserts succeeded, %d keys stored; want 1 and 1", ok, len(keys))
	}
}

func testIdPLoginThrottle(t *testing.T, _ store.Store, s store.IdP) {
	ctx := ctxFor(t)
	const key = "user:alice"
	got, err := s.LoginThrottle(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.LoginThrottle{Key: key}, got); diff != "" {
		t.Fatalf("empty throttle (-want +got):\n%s", diff)
	}
	window, lockout := 15*time.Minute, 10*time.Minute
	tests := []struct {
		name   string
		at     time.Time
		want   int
		start  time.Time
		locked time.Time
	}{
		{"first", t0, 1, t0, time.Time{}},
		{"second", t0.Add(time.Minute), 2, t0, time.Time{}},
		{"third locks", t0.Add(2 * time.Minute), 3, t0, t0.Add(2*time.Minute + lockout)},
		{"fourth extends", t0.Add(3 * time.Minute), 4, t0, t0.Add(3*time.Minute + lockout)},
		{"window over restarts", t0.Add(20 * time.Minute), 1, t0.Add(20 * time.Minute), t0.Add(3*time.Minute + lockout)},
	}
	for _, tt := range tests {
		got, err := s.RecordLoginFailure(ctx, key, tt.at, window, 3, lockout)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		want := store.LoginThrottle{Key: key, Failures: tt.want, WindowStart: tt.start, LockedUntil: tt.locked}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s (-want +got):\n%s", tt.name, diff)
		}
		read, err := s.LoginThrottle(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, read); diff != "" {
			t.Fatalf("%s: read back (-want +got):\n%s", tt.name, diff)
		}
	}
	// No limit: never locks.
	for i := range 10 {
		got, err := s.RecordLoginFailure(ctx, "ip:1.2.3.4", t0.Add(time.Duration(i)*time.Second), window, 0, lockout)
		if err != nil {
			t.Fatal(err)
		}
		if !got.LockedUntil.IsZero() || got.Failures != i+1 {
			t.Fatalf("limit 0: %+v", got)
		}
	}
	if err := s.ClearLoginThrottle(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearLoginThrottle(ctx, key); err != nil {
		t.Fatalf("clear twice: %v", err)
	}
	got, _ = s.LoginThrottle(ctx, key)
	if got.Failures != 0 || !got.LockedUntil.IsZero() {
		t.Fatalf("after clear: %+v", got)
	}
	if other, _ := s.LoginThrottle(ctx, "ip:1.2.3.4"); other.Failures != 10 {
		t.Fatalf("clear touched another key: %+v", other)
	}
	_, err = s.RecordLoginFailure(ctx, "", t0, window, 3, lockout)
	wantErr(t, "empty key", err, store.ErrInvalid)

	// Stale counters go; a recent one and a running lockout stay.
	if _, err := s.RecordLoginFailure(ctx, "user:old", t0, window, 0, lockout); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordLoginFailure(ctx, "user:locked", t0, window, 1, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordLoginFailure(ctx, "user:new", t0.Add(2*time.Hour), window, 0, lockout); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteStaleLoginThrottles(ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 { // user:old and ip:1.2.3.4
		t.Errorf("deleted %d stale counters, want 2", n)
	}
	for key, want := range map[string]int{"user:old": 0, "ip:1.2.3.4": 0, "user:locked": 1, "user:new": 1} {
		if got, _ := s.LoginThrottle(ctx, key); got.Failures != want {
			t.Errorf("%s: %d failures after the purge, want %d", key, got.Failures, want)
		}
	}
}

// testIdPLoginThrottleConcurrent: concurrent failures all count.
func testIdPLoginThrottleConcurrent(t *testing.T, _ store.Store, s store.IdP) {
	ctx := ctxFor(t)
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := s.RecordLoginFailure(ctx, "user:bob", t0.Add(time.Duration(i)*time.Millisecond), time.Hour, 30, time.Hour); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := s.LoginThrottle(ctx, "user:bob")
	if err != nil {
		t.Fatal(err)
	}
	if got.Failures != n || got.LockedUntil.IsZero() {
		t.Fatalf("after %d concurrent failures: %+v", n, got)
	}
}

func testIdPUserGroupNames(t *testing.T, st store.Store, s store.IdP) {
	ctx := ctxFor(t)
	u := createUser(t, st, scim.User{UserName: "carol"})
	other := createUser(t, st, scim.User{UserName: "dave"})
	for _, g := range []scim.Group{
		{DisplayName: "staff", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}, Members: []scim.Member{{Value: u.ID}, {Value: other.ID}}},
		{DisplayName: "Alumni", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}, Members: []scim.Member{{Value: u.ID}}},
		{DisplayName: "Maths 101", Connect: &scim.ConnectGroup{Kind: "course"}, Members: []scim.Member{{Value: u.ID}}},
		{DisplayName: "plain", Members: []scim.Member{{Value: u.ID}}},
		{DisplayName: "Others", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}, Members: []scim.Member{{Value: other.ID}}},
	} {
		createGroup(t, st, g)
	}
	got, err := s.UserGroupNames(ctx, u.ID, scim.KindAudience)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Alumni", "staff"}, got); diff != "" {
		t.Errorf("audiences (-want +got):\n%s", diff)
	}
	got, _ = s.UserGroupNames(ctx, u.ID, "course")
	if diff := cmp.Diff([]string{"Maths 101"}, got); diff != "" {
		t.Errorf("courses (-want +got):\n%s", diff)
	}
	if got, err := s.UserGroupNames(ctx, "no-such-user", scim.KindAudience); err != nil || len(got) != 0 {
		t.Errorf("unknown user: %v %v", got, err)
	}
}
