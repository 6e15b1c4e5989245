package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// Statement cache bounds: dynamic queries (filters, IN lists) have many
// shapes; only the first maxStmts short ones are kept prepared.
const (
	maxStmts    = 512
	maxStmtText = 8 << 10
)

// pool is a *sql.DB whose queries run as prepared statements, prepared once
// per text (and per connection, lazily, by database/sql). Parsing dominates the
// cost of the small queries a directory runs, on SQLite most of all.
type pool struct {
	db      *sql.DB
	stmts   sync.Map // text → *sql.Stmt
	n       atomic.Int64
	pending sync.Map // texts a transaction ran unprepared, to prepare after it
}

// later remembers text for preparePending. A transaction cannot prepare on
// the pool itself: the pool's only connection (SQLite's writer) is the one the
// transaction holds.
func (p *pool) later(text string) {
	if len(text) <= maxStmtText && p.n.Load() < maxStmts {
		p.pending.Store(text, struct{}{})
	}
}

// preparePending prepares what transactions ran unprepared.
func (p *pool) preparePending(ctx context.Context) {
	p.pending.Range(func(k, _ any) bool {
		p.pending.Delete(k)
		p.stmt(ctx, k.(string))
		return true
	})
}

// cached returns the prepared statement of text or nil, never preparing.
func (p *pool) cached(text string) *sql.Stmt {
	if v, ok := p.stmts.Load(text); ok {
		return v.(*sql.Stmt)
	}
	p.later(text)
	return nil
}

// stmt returns the prepared statement for text, or nil when it is not cached
// (cache full, text too long, or preparing failed: the caller then runs the
// text directly and gets the error there).
func (p *pool) stmt(ctx context.Context, text string) *sql.Stmt {
	if v, ok := p.stmts.Load(text); ok {
		return v.(*sql.Stmt)
	}
	if len(text) > maxStmtText || p.n.Load() >= maxStmts {
		return nil
	}
	st, err := p.db.PrepareContext(ctx, text)
	if err != nil {
		return nil
	}
	if old, loaded := p.stmts.LoadOrStore(text, st); loaded {
		st.Close()
		return old.(*sql.Stmt)
	}
	p.n.Add(1)
	return st
}

func (p *pool) ExecContext(ctx context.Context, text string, args ...any) (sql.Result, error) {
	if st := p.stmt(ctx, text); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.db.ExecContext(ctx, text, args...)
}

func (p *pool) QueryContext(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(ctx, text); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.db.QueryContext(ctx, text, args...)
}

func (p *pool) QueryRowContext(ctx context.Context, text string, args ...any) *sql.Row {
	if st := p.stmt(ctx, text); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.db.QueryRowContext(ctx, text, args...)
}

func (p *pool) close() {
	p.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
}

// txn is a write transaction that runs its queries through the write pool's
// prepared statements.
type txn struct {
	tx *sql.Tx
	p  *pool
}

func (t *txn) ExecContext(ctx context.Context, text string, args ...any) (sql.Result, error) {
	if st := t.p.cached(text); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, text, args...)
}

func (t *txn) QueryContext(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	if st := t.p.cached(text); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, text, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, text string, args ...any) *sql.Row {
	if st := t.p.cached(text); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, text, args...)
}

// queryer is what pool and txn share.
type queryer interface {
	QueryContext(ctx context.Context, text string, args ...any) (*sql.Rows, error)
}
