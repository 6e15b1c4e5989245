package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

func TestHashFormat(t *testing.T) {
	h, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("Hash = %q, want argon2id PHC with OWASP parameters", h)
	}
	parts := strings.Split(h, "$")
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) != 16 {
		t.Fatalf("salt %q: %v (len %d)", parts[4], err, len(salt))
	}
	// The stored key is what argon2id computes from those parameters.
	want := argon2.IDKey([]byte("correct horse"), salt, 2, 19*1024, 1, 32)
	if got := base64.RawStdEncoding.EncodeToString(want); got != parts[5] {
		t.Fatalf("hash part %q, recomputed %q", parts[5], got)
	}
	h2, _ := Hash("correct horse")
	if h2 == h {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

func TestHashRejects(t *testing.T) {
	if _, err := Hash(""); !errors.Is(err, ErrEmpty) {
		t.Errorf("Hash(\"\") err = %v, want ErrEmpty", err)
	}
	if _, err := Hash(strings.Repeat("a", MaxLength+1)); !errors.Is(err, ErrTooLong) {
		t.Errorf("Hash(long) err = %v, want ErrTooLong", err)
	}
}

func argonPHC(pw string, m, tm uint32, p uint8, salt []byte, keyLen uint32) string {
	k := argon2.IDKey([]byte(pw), salt, tm, m, p, keyLen)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, tm, p,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(k))
}

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestVerify(t *testing.T) {
	good, err := Hash("s3cret!")
	if err != nil {
		t.Fatal(err)
	}
	salt := []byte("0123456789abcdef")
	bc := bcryptHash(t, "s3cret!")
	tests := []struct {
		name       string
		phc, pw    string
		ok, rehash bool
		err        error
	}{
		{name: "argon2id match", phc: good, pw: "s3cret!", ok: true},
		{name: "argon2id wrong", phc: good, pw: "s3cret?"},
		{name: "argon2id empty password", phc: good, pw: ""},
		{name: "argon2id weak params match", phc: argonPHC("pw", 4096, 1, 1, salt, 32), pw: "pw", ok: true, rehash: true},
		{name: "argon2id weak params wrong", phc: argonPHC("pw", 4096, 1, 1, salt, 32), pw: "px"},
		{name: "argon2id stronger params", phc: argonPHC("pw", 32768, 3, 2, salt, 32), pw: "pw", ok: true},
		{name: "argon2id short key", phc: argonPHC("pw", 19456, 2, 1, salt, 16), pw: "pw", ok: true, rehash: true},
		{name: "bcrypt 2a match", phc: bc, pw: "s3cret!", ok: true, rehash: true},
		{name: "bcrypt 2a wrong", phc: bc, pw: "nope"},
		{name: "bcrypt 2y match", phc: "$2y$" + bc[4:], pw: "s3cret!", ok: true, rehash: true},
		{name: "bcrypt 2b match", phc: "$2b$" + bc[4:], pw: "s3cret!", ok: true, rehash: true},
		{name: "bcrypt truncated", phc: bc[:20], pw: "s3cret!", err: ErrMalformed},
		{name: "unknown scheme", phc: "$1$abc$def", pw: "x", err: ErrUnknownFormat},
		{name: "plain text", phc: "s3cret!", pw: "s3cret!", err: ErrUnknownFormat},
		{name: "empty hash", phc: "", pw: "", err: ErrUnknownFormat},
		{name: "argon2i not argon2id", phc: strings.Replace(good, "argon2id", "argon2i", 1), pw: "s3cret!", err: ErrUnknownFormat},
		{name: "wrong version", phc: strings.Replace(good, "v=19", "v=16", 1), pw: "s3cret!", err: ErrMalformed},
		{name: "missing part", phc: "$argon2id$v=19$m=19456,t=2,p=1$abc", pw: "x", err: ErrMalformed},
		{name: "bad salt", phc: "$argon2id$v=19$m=19456,t=2,p=1$!!!$" + strings.Split(good, "$")[5], pw: "x", err: ErrMalformed},
		{name: "huge memory", phc: strings.Replace(good, "m=19456", "m=4294967295", 1), pw: "x", err: ErrMalformed},
		{name: "huge time", phc: strings.Replace(good, "t=2", "t=100000", 1), pw: "x", err: ErrMalformed},
		{name: "zero threads", phc: strings.Replace(good, "p=1", "p=0", 1), pw: "x", err: ErrMalformed},
		{name: "duplicate param", phc: strings.Replace(good, "p=1", "m=1", 1), pw: "x", err: ErrMalformed},
		{name: "unknown param", phc: strings.Replace(good, "p=1", "p=1,x=2", 1), pw: "x", err: ErrMalformed},
		{name: "password too long", phc: good, pw: strings.Repeat("a", MaxLength+1)},
		// A stored hash must not make one login attempt cost minutes or
		// gigabytes (a hub with GOMAXPROCS+1 verifications at once would be
		// killed, or every hashing slot held for hours).
		{name: "argon2id 1 GiB memory", phc: strings.Replace(good, "m=19456", "m=1048576", 1), pw: "x", err: ErrMalformed},
		{name: "argon2id 64 passes", phc: strings.Replace(good, "t=2", "t=64", 1), pw: "x", err: ErrMalformed},
		{name: "argon2id 64 lanes", phc: strings.Replace(good, "p=1", "p=64", 1), pw: "x", err: ErrMalformed},
		{name: "bcrypt cost 31", phc: bc[:4] + "31" + bc[6:], pw: "s3cret!", err: ErrMalformed},
		{name: "bcrypt cost 17", phc: bc[:4] + "17" + bc[6:], pw: "s3cret!", err: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := Verify(tt.phc, tt.pw)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if ok != tt.ok || rehash != tt.rehash {
				t.Fatalf("Verify = (ok %v, rehash %v), want (%v, %v)", ok, rehash, tt.ok, tt.rehash)
			}
		})
	}
}

// TestCheck: what Verify would refuse is refused when a hash is stored, before
// any login tries it.
func TestCheck(t *testing.T) {
	good, err := Hash("s3cret!")
	if err != nil {
		t.Fatal(err)
	}
	bc := bcryptHash(t, "s3cret!")
	tests := []struct {
		name string
		phc  string
		err  error
	}{
		{"argon2id", good, nil},
		{"bcrypt 2a", bc, nil},
		{"bcrypt 2y", "$2y$" + bc[4:], nil},
		{"bcrypt cost 16", bc[:4] + "16" + bc[6:], nil},
		{"bcrypt cost 31", bc[:4] + "31" + bc[6:], ErrMalformed},
		{"bcrypt truncated", bc[:20], ErrMalformed},
		{"argon2id 256 MiB", strings.Replace(good, "m=19456", "m=262144", 1), nil},
		{"argon2id 1 GiB", strings.Replace(good, "m=19456", "m=1048576", 1), ErrMalformed},
		{"argon2id bad hash", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$!!", ErrMalformed},
		{"plain text", "s3cret!", ErrUnknownFormat},
		{"empty", "", ErrUnknownFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Check(tt.phc); !errors.Is(err, tt.err) {
				t.Fatalf("Check = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestVerifyErrorsCarryNoSecret(t *testing.T) {
	_, _, err := Verify("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$!!", "hunter2")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := Hash("benchmark password"); err != nil {
			b.Fatal(err)
		}
	}
}
