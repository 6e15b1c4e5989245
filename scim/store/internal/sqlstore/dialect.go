package sqlstore

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"github.com/connectsso/connect/scim/filter"
)

// Dialect is what differs between the SQL engines. Everything else — the
// schema, the queries, the transactions — is shared.
type Dialect struct {
	// Name is "sqlite" or "postgres" (used in errors and logs).
	Name string
	// Filter is handed to the filter compiler.
	Filter filter.Dialect
	// Numbered reports whether bind parameters are "$n" (true) or "?".
	Numbered bool
	// Types replaces the type tokens of the shared migrations: %PK% (an integer
	// primary key assigned by the database), %SERIAL% (the same, never reused),
	// %BLOB% (bytes).
	Types map[string]string
	// IsUnique reports whether err is a unique-constraint violation.
	IsUnique func(error) bool
	// Retryable reports whether a write transaction failed in a way that a
	// retry can cure (deadlock, serialization failure). May be nil.
	Retryable func(error) bool
	// ForUpdate is appended to a SELECT that reads a row it will update inside
	// a write transaction (" FOR UPDATE" on engines with row locks).
	ForUpdate string
	// JournalLock, when set, runs right before the journal rows of a write are
	// inserted (the last statement of every write). Holding it until commit
	// makes journal sequence numbers commit in order, so a reader that has seen
	// seq n never later sees a smaller one appear.
	JournalLock string
	// Migrations are the engine's own statements of a migration version
	// (triggers, which the engines write differently), run before the shared
	// statements of that version.
	Migrations map[int][]string
	// BatchCounts, when set, runs first in a CreateUsers transaction. It
	// tells the engine's user_buckets triggers (migration 5) to leave the
	// batch's inserts alone: CreateUsers then adds them up per pk block itself,
	// one statement per block, where the triggers would update the same row
	// once per user (on PostgreSQL each such update of a row the transaction
	// already updated costs more than the last).
	BatchCounts string
	// LockMigrations serialises migrations between processes starting at once.
	// It returns the function that releases the lock. nil means the migration
	// transaction itself is exclusive (SQLite BEGIN IMMEDIATE).
	LockMigrations func(ctx context.Context, c *sql.Conn) (func(), error)
	// AfterMigrate, when set, runs in the migration transaction after the
	// migrations from version `from` (0 for a new database) were applied.
	AfterMigrate func(ctx context.Context, tx *sql.Tx, from int) error
}

// rebind turns the "?" placeholders of a static query into "$n" when the
// dialect numbers them. Static queries never contain a literal "?".
func (d *Dialect) rebind(q string) string {
	if !d.Numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func (d *Dialect) placeholder(n int) string {
	if d.Numbered {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// builder assembles a dynamic query and its arguments in order.
type builder struct {
	d    *Dialect
	sb   strings.Builder
	args []any
}

func (b *builder) w(parts ...string) *builder {
	for _, p := range parts {
		b.sb.WriteString(p)
	}
	return b
}

// arg appends v and returns its placeholder.
func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return b.d.placeholder(len(b.args))
}

// in writes "(p1, p2, ...)" for vals.
func (b *builder) in(vals []string) *builder {
	b.sb.WriteByte('(')
	for i, v := range vals {
		if i > 0 {
			b.sb.WriteString(", ")
		}
		b.sb.WriteString(b.arg(v))
	}
	b.sb.WriteByte(')')
	return b
}

func (b *builder) String() string { return b.sb.String() }
