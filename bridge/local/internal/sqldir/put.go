package sqldir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/connectsso/connect/bridge/local"
)

// maxInsertRows is the most rows one multi-row INSERT carries: 128 rows of
// len(writeCols) values stay far below SQLite's 32,766 and PostgreSQL's 65,535
// bind parameters. A run of creates is cut into chunks of 128, 64, …, 1 rows, so
// only those few statements exist and each is compiled once per connection.
const maxInsertRows = 128

// writeStmts are the account writes, prepared once on the write pool and bound
// to each transaction with Tx.StmtContext: SQLite's single writer connection
// (and each PostgreSQL connection) compiles them once, not once per batch.
type writeStmts struct {
	insertN map[int]*sql.Stmt // n rows (a power of two ≤ maxInsertRows); RETURNING pk, username_key
	update  *sql.Stmt         // every column but created, by pk
}

func insertSQL(d *Dialect, rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO local_accounts (` + strings.Join(writeCols, ", ") + `) VALUES `)
	row := `(` + placeholders(len(writeCols)) + `)`
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(` ON CONFLICT DO NOTHING RETURNING pk, username_key`)
	return d.rebind(b.String())
}

func updateSQL(d *Dialect) string {
	set := make([]string, 0, len(writeCols))
	for _, c := range writeCols {
		if c != "created" { // created is never rewritten
			set = append(set, c+" = ?")
		}
	}
	return d.rebind(`UPDATE local_accounts SET ` + strings.Join(set, ", ") + ` WHERE pk = ?`)
}

// prepareWrites prepares the account writes on w.
func prepareWrites(ctx context.Context, d *Dialect, w *sql.DB) (*writeStmts, error) {
	ws := &writeStmts{insertN: map[int]*sql.Stmt{}}
	prep := func(q string) (*sql.Stmt, error) {
		st, err := w.PrepareContext(ctx, q)
		if err != nil {
			ws.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		return st, nil
	}
	var err error
	if ws.update, err = prep(updateSQL(d)); err != nil {
		return nil, err
	}
	for n := 1; n <= maxInsertRows; n *= 2 {
		if ws.insertN[n], err = prep(insertSQL(d, n)); err != nil {
			return nil, err
		}
	}
	return ws, nil
}

func (ws *writeStmts) close() error {
	var errs []error
	if ws.update != nil {
		errs = append(errs, ws.update.Close())
	}
	for _, st := range ws.insertN {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// insertChunk is the size of the next multi-row INSERT for n remaining rows.
func insertChunk(n int) int {
	c := maxInsertRows
	for c > n {
		c /= 2
	}
	return c
}

// putState is the working set of one PutAccounts transaction: every account
// the batch touches, read once up front and kept current as items apply.
type putState struct {
	byPK  map[int64]*local.Account
	byHub map[hubKey]int64
}

func (ps *putState) add(pk int64, a local.Account) {
	if old, ok := ps.byPK[pk]; ok && old.HubUserID != "" {
		delete(ps.byHub, hubKey{old.Server, old.HubUserID})
	}
	ps.byPK[pk] = &a
	if a.HubUserID != "" {
		ps.byHub[hubKey{a.Server, a.HubUserID}] = pk
	}
}

// errRace is a create held back by a hub key the batch had found free:
// another writer (a PostgreSQL replica) got there first. The transaction is
// rolled back and run again, and then sees that writer's rows.
var errRace = errors.New("concurrent write of the same account")

// create is a put that makes a new account, waiting in a batch's run.
type create struct {
	i    int           // index of the put
	put  local.Put     // as given (an update after a lost race needs it)
	acct local.Account // as it will be stored (ID unset)
	key  string        // FoldKey(acct.Username)
	args []any
}

// batch applies one PutAccounts transaction. Items apply in order, with the
// result of writing them one at a time; consecutive creates are collected in
// a run and written by multi-row INSERTs, which cost a fraction of one
// statement per account. A run is written before any item that could see it
// (an update, a put by id, a create sharing a username or hub key with it).
type batch struct {
	s     *Dir
	tx    *sql.Tx
	ps    *putState
	now   time.Time
	rs    []local.Result
	stmts map[*sql.Stmt]*sql.Stmt // pool statement → bound to tx

	run     []create
	runUser map[string]bool
	runHub  map[hubKey]bool
}

// stmt returns st bound to the batch's transaction.
func (b *batch) stmt(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	if t, ok := b.stmts[st]; ok {
		return t
	}
	t := b.tx.StmtContext(ctx, st)
	b.stmts[st] = t
	return t
}

// PutAccounts upserts a batch in one transaction (see local.Directory).
func (s *Dir) PutAccounts(ctx context.Context, puts []local.Put) ([]local.Result, error) {
	if len(puts) > local.MaxBatch {
		return nil, fmt.Errorf("put %d accounts: at most %d: %w", len(puts), local.MaxBatch, local.ErrInvalid)
	}
	if len(puts) == 0 {
		return []local.Result{}, nil
	}
	var rs []local.Result
	err := s.withTx(ctx, "put accounts", func(tx *sql.Tx) error {
		var err error
		rs, err = s.putTx(ctx, tx, puts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rs, nil
}

func (s *Dir) putTx(ctx context.Context, tx *sql.Tx, puts []local.Put) ([]local.Result, error) {
	ps := &putState{byPK: map[int64]*local.Account{}, byHub: map[hubKey]int64{}}
	var pks []int64
	hubs := map[string][]string{}
	for _, p := range puts {
		a := p.Account
		switch {
		case a.ID != "":
			if pk, ok := parsePK(a.ID); ok {
				pks = append(pks, pk)
			}
		case a.Server != "" && a.HubUserID != "":
			hubs[a.Server] = append(hubs[a.Server], a.HubUserID)
		}
	}
	if err := s.prefetch(ctx, tx, ps, pks, hubs); err != nil {
		return nil, err
	}
	b := &batch{
		s: s, tx: tx, ps: ps, rs: make([]local.Result, len(puts)),
		now:     local.Normalize(local.Account{Modified: s.now()}).Modified,
		stmts:   map[*sql.Stmt]*sql.Stmt{},
		runUser: map[string]bool{}, runHub: map[hubKey]bool{},
	}
	for i, p := range puts {
		if err := b.put(ctx, i, p); err != nil {
			return nil, err
		}
	}
	if err := b.flush(ctx); err != nil {
		return nil, err
	}
	return b.rs, nil
}

// prefetch loads the accounts the batch names by id or hub key.
func (s *Dir) prefetch(ctx context.Context, tx *sql.Tx, ps *putState, pks []int64, hubs map[string][]string) error {
	load := func(q string, args []any) error {
		rows, err := tx.QueryContext(ctx, s.d.rebind(q+s.d.ForUpdate), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, pk, err := scanAccount(rows)
			if err != nil {
				return err
			}
			ps.add(pk, a)
		}
		return rows.Err()
	}
	if len(pks) > 0 {
		args := make([]any, len(pks))
		for i, pk := range pks {
			args[i] = pk
		}
		if err := load(`SELECT `+accountCols+` FROM local_accounts WHERE pk IN (`+placeholders(len(args))+`)`, args); err != nil {
			return err
		}
	}
	var keys []any
	for server, ids := range hubs {
		for _, id := range ids {
			keys = append(keys, hubKeyOf(server, id))
		}
	}
	if len(keys) > 0 {
		if err := load(`SELECT `+accountCols+` FROM local_accounts WHERE hub_key IN (`+placeholders(len(keys))+`)`, keys); err != nil {
			return err
		}
	}
	return nil
}

// put applies (or queues, for a create) item i. Contract failures go to the
// item's Result; a returned error is a database failure that aborts the batch.
func (b *batch) put(ctx context.Context, i int, p local.Put) error {
	a := p.Account
	if a.ID != "" {
		// An id names an existing account (one made by this run, too).
		if err := b.flush(ctx); err != nil {
			return err
		}
		pk, ok := parsePK(a.ID)
		if ok && b.ps.byPK[pk] != nil {
			return b.update(ctx, i, p, pk)
		}
		b.rs[i] = local.Result{Err: fmt.Errorf("account %q: %w", a.ID, local.ErrNotFound)}
		return nil
	}
	hk, keyed := hubKey{a.Server, a.HubUserID}, a.Server != "" && a.HubUserID != ""
	if keyed && b.runHub[hk] {
		if err := b.flush(ctx); err != nil {
			return err
		}
	}
	if keyed {
		if pk := b.ps.byHub[hk]; pk != 0 {
			if err := b.flush(ctx); err != nil {
				return err
			}
			return b.update(ctx, i, p, pk)
		}
	}
	c := local.Normalize(a)
	c.ID, c.Created, c.Modified = "", b.now, b.now
	if err := local.CheckAccount(c); err != nil {
		b.rs[i] = local.Result{Err: err}
		return nil
	}
	args, err := accountArgs(c)
	if err != nil {
		b.rs[i] = local.Result{Err: fmt.Errorf("%v: %w", err, local.ErrInvalid)}
		return nil
	}
	cr := create{i: i, put: p, acct: c, key: local.FoldKey(c.Username), args: args}
	if b.runUser[cr.key] {
		// The same username twice: the first one takes it.
		if err := b.flush(ctx); err != nil {
			return err
		}
		return b.createOne(ctx, cr)
	}
	b.run = append(b.run, cr)
	b.runUser[cr.key] = true
	if keyed {
		b.runHub[hk] = true
	}
	return nil
}

// flush writes the run of creates.
func (b *batch) flush(ctx context.Context) error {
	run := b.run
	if len(run) == 0 {
		return nil
	}
	b.run = nil
	clear(b.runUser)
	clear(b.runHub)
	if len(run) == 1 {
		return b.createOne(ctx, run[0])
	}
	return b.insertRun(ctx, run)
}

// insertRun writes a run of creates with multi-row INSERTs. No two of them
// share a username or hub key, and no stored account had their hub keys when
// the batch read them, so a row held back by a uniqueness rule has a username
// a stored account holds: that create fails as it would alone, and writes
// nothing the others could see. If its hub key turns out to be held after all,
// another writer (a PostgreSQL replica) created that hub user meanwhile:
// errRace, and the transaction starts again and updates it.
func (b *batch) insertRun(ctx context.Context, run []create) error {
	pks := make(map[string]int64, len(run))
	args := make([]any, 0, min(len(run), maxInsertRows)*len(writeCols))
	for rest := run; len(rest) > 0; {
		n := insertChunk(len(rest))
		args = args[:0]
		for _, c := range rest[:n] {
			args = append(args, c.args...)
		}
		if err := b.insertRows(ctx, b.stmt(ctx, b.s.ws.insertN[n]), args, pks); err != nil {
			return err
		}
		rest = rest[n:]
	}
	for _, c := range run {
		pk, ok := pks[c.key]
		if ok {
			c.acct.ID = fmtPK(pk)
			b.ps.add(pk, c.acct)
			b.rs[c.i] = local.Result{Account: c.acct, Op: local.OpCreated}
			continue
		}
		if c.acct.HubUserID != "" {
			_, _, err := b.s.accountWhere(ctx, b.tx, `hub_key = ?`, hubKeyOf(c.acct.Server, c.acct.HubUserID))
			if err == nil {
				return errRace
			}
			if !errors.Is(err, local.ErrNotFound) {
				return err
			}
		}
		b.rs[c.i] = local.Result{Err: fmt.Errorf("username %q is taken: %w", c.acct.Username, local.ErrConflict)}
	}
	return nil
}

// insertRows runs one multi-row INSERT and records the (username key, pk) of
// each row written.
func (b *batch) insertRows(ctx context.Context, st *sql.Stmt, args []any, pks map[string]int64) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var pk int64
		var key string
		if err := rows.Scan(&pk, &key); err != nil {
			return err
		}
		pks[key] = pk
	}
	return rows.Err()
}

// createOne inserts one account. When a uniqueness rule holds the row back and
// another writer has created this hub user meanwhile, it updates that account
// instead (the idempotent create); otherwise the username is taken.
func (b *batch) createOne(ctx context.Context, c create) error {
	var pk int64
	var key string
	err := b.stmt(ctx, b.s.ws.insertN[1]).QueryRowContext(ctx, c.args...).Scan(&pk, &key)
	if err == nil {
		c.acct.ID = fmtPK(pk)
		b.ps.add(pk, c.acct)
		b.rs[c.i] = local.Result{Account: c.acct, Op: local.OpCreated}
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if c.acct.HubUserID != "" {
		got, gpk, err := b.s.accountWhere(ctx, b.tx, `hub_key = ?`+b.s.d.ForUpdate, hubKeyOf(c.acct.Server, c.acct.HubUserID))
		if err == nil {
			b.ps.add(gpk, got)
			return b.update(ctx, c.i, c.put, gpk)
		}
		if !errors.Is(err, local.ErrNotFound) {
			return err
		}
	}
	b.rs[c.i] = local.Result{Err: fmt.Errorf("username %q is taken: %w", c.acct.Username, local.ErrConflict)}
	return nil
}

// update writes put i over the stored account pk (in the batch's state).
func (b *batch) update(ctx context.Context, i int, p local.Put, pk int64) error {
	stored := b.ps.byPK[pk]
	if p.Fields == 0 {
		b.rs[i] = local.Result{Err: fmt.Errorf("update of account %s without a field mask: %w", stored.ID, local.ErrInvalid)}
		return nil
	}
	m := local.Merge(*stored, p.Account, p.Fields)
	if err := local.CheckAccount(m); err != nil {
		b.rs[i] = local.Result{Err: fmt.Errorf("account %s: %w", stored.ID, err)}
		return nil
	}
	if err := local.CheckTakeover(*stored, m); err != nil {
		b.rs[i] = local.Result{Err: err}
		return nil
	}
	if local.SameContent(*stored, m) {
		b.rs[i] = local.Result{Account: *stored, Op: local.OpUnchanged}
		return nil
	}
	now := b.now
	if !now.After(stored.Modified) {
		now = stored.Modified.Add(time.Microsecond) // Modified only moves forward
	}
	m.Modified = now
	args, err := accountArgs(m)
	if err != nil {
		b.rs[i] = local.Result{Err: fmt.Errorf("%v: %w", err, local.ErrInvalid)}
		return nil
	}
	args = append(append(args[:len(args)-2], now.UnixMicro()), pk) // drop created
	upd := b.stmt(ctx, b.s.ws.update)
	keyChange := local.FoldKey(m.Username) != local.FoldKey(stored.Username) ||
		m.Server != stored.Server || m.HubUserID != stored.HubUserID
	if !keyChange {
		if _, err := upd.ExecContext(ctx, args...); err != nil {
			return err
		}
	} else {
		// A new username or hub key may collide: a savepoint keeps the
		// transaction usable (PostgreSQL aborts it on any failed statement).
		if _, err := b.tx.ExecContext(ctx, `SAVEPOINT put_account`); err != nil {
			return err
		}
		if _, err := upd.ExecContext(ctx, args...); err != nil {
			if !b.s.d.IsUnique(err) {
				return err
			}
			if _, rerr := b.tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT put_account`); rerr != nil {
				return rerr
			}
			if _, rerr := b.tx.ExecContext(ctx, `RELEASE SAVEPOINT put_account`); rerr != nil {
				return rerr
			}
			b.rs[i] = local.Result{Err: fmt.Errorf("account %s: username %q or hub key (%s, %s) is taken: %w", stored.ID, m.Username, m.Server, m.HubUserID, local.ErrConflict)}
			return nil
		}
		if _, err := b.tx.ExecContext(ctx, `RELEASE SAVEPOINT put_account`); err != nil {
			return err
		}
	}
	b.ps.add(pk, m)
	b.rs[i] = local.Result{Account: m, Op: local.OpUpdated}
	return nil
}
