// Package password hashes and verifies user passwords. New hashes are argon2id PHC
// strings with at least the OWASP minimum parameters (m=19 MiB, t=2, p=1); bcrypt
// hashes ($2a$, $2b$, $2y$) imported from other systems (Totara, Moodle) verify too
// and report that they need a rehash.
//
// It imports the standard library and golang.org/x/crypto only.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Default argon2id parameters: the OWASP minimum (19 MiB, 2 passes, 1 lane).
const (
	DefaultMemory  = 19 * 1024 // KiB
	DefaultTime    = 2
	DefaultThreads = 1
	saltLen        = 16
	keyLen         = 32
)

// Limits on what a stored hash may ask for, so that a hostile or corrupt PHC string
// cannot make Verify allocate gigabytes or spin for minutes.
//
// One verification may cost at most about what 16 passes over 256 MiB or
// bcrypt cost 16 cost (a few seconds): the IdP verifies GOMAXPROCS+1 at once,
// so a 1 GiB hash would exhaust a hub's memory, and bcrypt cost 31 would hold
// a hashing slot for days, both on demand of anyone who types the user name.
//
// Check applies the same limits, so hashes given to the hub (provisioning,
// imports) are refused up front rather than at the first login.
const (
	MaxMemory     = 256 << 10 // KiB (256 MiB)
	MaxTime       = 16
	MaxThreads    = 16
	MaxBcryptCost = 16
	maxKeyLen     = 128
)

// MaxLength is the longest password accepted, in bytes. bcrypt ignores bytes after
// 72; argon2id has no limit, but an unbounded input is a denial-of-service vector.
const MaxLength = 4096

// Sentinel errors.
var (
	// ErrUnknownFormat means the stored hash is neither argon2id PHC nor bcrypt.
	ErrUnknownFormat = errors.New("password: unknown hash format")
	// ErrMalformed means the stored hash has the right prefix but cannot be parsed
	// or asks for parameters beyond the limits.
	ErrMalformed = errors.New("password: malformed hash")
	// ErrTooLong means the password exceeds MaxLength.
	ErrTooLong = errors.New("password: too long")
	// ErrEmpty means the password is empty.
	ErrEmpty = errors.New("password: empty")
)

var b64 = base64.RawStdEncoding

// Hash returns the argon2id PHC string of pw with a fresh random salt, e.g.
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func Hash(pw string) (string, error) {
	if pw == "" {
		return "", ErrEmpty
	}
	if len(pw) > MaxLength {
		return "", ErrTooLong
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, DefaultTime, DefaultMemory, DefaultThreads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, DefaultMemory, DefaultTime, DefaultThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks pw against a stored hash (argon2id PHC or bcrypt). ok is true when
// the password matches; needsRehash is true when it matches but the hash is bcrypt
// or uses weaker argon2id parameters than Hash would, so the caller should store
// Hash(pw) instead. err is ErrUnknownFormat or ErrMalformed for a hash it cannot
// read (see Check); a wrong password is ok == false with a nil error.
func Verify(phc, pw string) (ok, needsRehash bool, err error) {
	if len(pw) > MaxLength {
		return false, false, nil
	}
	switch {
	case strings.HasPrefix(phc, "$argon2id$"):
		return verifyArgon2id(phc, pw)
	case isBcrypt(phc):
		h, err := bcryptForm(phc)
		if err != nil {
			return false, false, err
		}
		// x/crypto/bcrypt compares in constant time.
		switch cerr := bcrypt.CompareHashAndPassword(h, []byte(pw)); {
		case cerr == nil:
			return true, true, nil
		case errors.Is(cerr, bcrypt.ErrMismatchedHashAndPassword):
			return false, false, nil
		default:
			return false, false, fmt.Errorf("%w: bcrypt", ErrMalformed)
		}
	}
	return false, false, ErrUnknownFormat
}

// Check reports whether Verify can use a stored hash: nil for an argon2id PHC
// string or a bcrypt hash within the limits, ErrUnknownFormat or ErrMalformed
// otherwise. Callers that store hashes given to them (imports, provisioning)
// check them first, so that a hash no login could use, or one that would make
// each login attempt cost minutes or gigabytes, is refused up front.
func Check(phc string) error {
	switch {
	case strings.HasPrefix(phc, "$argon2id$"):
		_, _, _, err := parseArgon2id(phc)
		return err
	case isBcrypt(phc):
		_, err := bcryptForm(phc)
		return err
	}
	return ErrUnknownFormat
}

func isBcrypt(phc string) bool {
	return strings.HasPrefix(phc, "$2a$") || strings.HasPrefix(phc, "$2b$") || strings.HasPrefix(phc, "$2y$")
}

// bcryptForm returns the hash as x/crypto/bcrypt reads it, after checking its
// shape and cost. $2y$ (PHP) is the same algorithm as $2b$; the library only
// knows $2a$/$2b$, so the prefix is rewritten.
func bcryptForm(phc string) ([]byte, error) {
	h := phc
	if strings.HasPrefix(h, "$2y$") {
		h = "$2b$" + h[4:]
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil {
		return nil, fmt.Errorf("%w: bcrypt", ErrMalformed)
	}
	if cost > MaxBcryptCost {
		return nil, fmt.Errorf("%w: bcrypt cost %d over %d", ErrMalformed, cost, MaxBcryptCost)
	}
	return []byte(h), nil
}

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

func verifyArgon2id(phc, pw string) (ok, needsRehash bool, err error) {
	p, salt, want, err := parseArgon2id(phc)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	weak := p.memory < DefaultMemory || p.time < DefaultTime || len(want) < keyLen || len(salt) < saltLen
	return true, weak, nil
}

// parseArgon2id reads "$argon2id$v=19$m=..,t=..,p=..$salt$hash".
func parseArgon2id(phc string) (p argonParams, salt, want []byte, err error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, ErrMalformed
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: unsupported argon2 version", ErrMalformed)
	}
	if p, err = parseParams(parts[3]); err != nil {
		return p, nil, nil, err
	}
	salt, err = b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, fmt.Errorf("%w: salt", ErrMalformed)
	}
	want, err = b64.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > maxKeyLen {
		return p, nil, nil, fmt.Errorf("%w: hash", ErrMalformed)
	}
	return p, salt, want, nil
}

func parseParams(s string) (argonParams, error) {
	var p argonParams
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, found := strings.Cut(kv, "=")
		if !found || seen[k] {
			return p, fmt.Errorf("%w: parameters", ErrMalformed)
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, fmt.Errorf("%w: parameter %s", ErrMalformed, k)
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return p, fmt.Errorf("%w: parameter p", ErrMalformed)
			}
			p.threads = uint8(n)
		default:
			return p, fmt.Errorf("%w: unknown parameter %s", ErrMalformed, k)
		}
	}
	if !seen["m"] || !seen["t"] || !seen["p"] {
		return p, fmt.Errorf("%w: missing parameter", ErrMalformed)
	}
	if p.time < 1 || p.time > MaxTime || p.threads < 1 || p.threads > MaxThreads ||
		p.memory < 8*uint32(p.threads) || p.memory > MaxMemory {
		return p, fmt.Errorf("%w: parameters out of range", ErrMalformed)
	}
	return p, nil
}
