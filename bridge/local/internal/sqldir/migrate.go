package sqldir

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// migrations are applied in order; each entry is one version made of
// statements. Released versions are never edited: a change is a new version.
// Type tokens (%PK%, %BLOB%) are replaced per dialect. Every table carries the
// local_ prefix so a bridge may share a database with other components.
var migrations = [][]string{
	1: {
		`CREATE TABLE local_accounts (
			pk %PK%,
			username TEXT NOT NULL,
			username_key TEXT NOT NULL,
			auth TEXT NOT NULL,
			server TEXT,
			hub_user_id TEXT,
			hub_key TEXT,
			email TEXT NOT NULL,
			email_key TEXT,
			email_verified INTEGER NOT NULL,
			given_name TEXT NOT NULL,
			family_name TEXT NOT NULL,
			display_name TEXT NOT NULL,
			id_number TEXT,
			language TEXT NOT NULL,
			timezone TEXT NOT NULL,
			city TEXT NOT NULL,
			country TEXT NOT NULL,
			phone TEXT NOT NULL,
			title TEXT NOT NULL,
			organization TEXT NOT NULL,
			department TEXT NOT NULL,
			interests TEXT,
			custom_fields TEXT,
			password_hash TEXT NOT NULL,
			privileged INTEGER NOT NULL,
			suspended INTEGER NOT NULL,
			suspended_by TEXT NOT NULL,
			deleted BIGINT,
			created BIGINT NOT NULL,
			modified BIGINT NOT NULL
		)`,
		`CREATE UNIQUE INDEX local_accounts_username ON local_accounts (username_key)`,
		// hub_key is (server, hub user id) in one column, so that a page of lookups
		// by hub key has exactly one index to use: with (server, hub_user_id) a
		// planner without statistics scanned the whole server instead.
		`CREATE UNIQUE INDEX local_accounts_hub ON local_accounts (hub_key)`,
		// Listing one server's accounts walks this index in primary-key order.
		`CREATE INDEX local_accounts_server ON local_accounts (server, pk)`,
		`CREATE INDEX local_accounts_email ON local_accounts (email_key)`,
		`CREATE INDEX local_accounts_id_number ON local_accounts (id_number)`,
		`CREATE INDEX local_accounts_deleted ON local_accounts (deleted)`,
		`CREATE TABLE local_groups (
			pk %PK%,
			name TEXT NOT NULL,
			kind TEXT NOT NULL,
			server TEXT,
			hub_group_id TEXT,
			locked INTEGER NOT NULL,
			created BIGINT NOT NULL,
			modified BIGINT NOT NULL
		)`,
		`CREATE UNIQUE INDEX local_groups_hub ON local_groups (server, hub_group_id)`,
		`CREATE TABLE local_members (
			group_pk BIGINT NOT NULL REFERENCES local_groups (pk) ON DELETE CASCADE,
			account_pk BIGINT NOT NULL REFERENCES local_accounts (pk) ON DELETE CASCADE,
			PRIMARY KEY (group_pk, account_pk)
		)`,
		`CREATE INDEX local_members_account ON local_members (account_pk)`,
		`CREATE TABLE local_records (
			kind TEXT NOT NULL,
			rkey TEXT NOT NULL,
			value %BLOB% NOT NULL,
			expires BIGINT,
			modified BIGINT NOT NULL,
			PRIMARY KEY (kind, rkey)
		)`,
		`CREATE INDEX local_records_expires ON local_records (expires)`,
	},
	// Fewer index writes per account: the ID number index holds only accounts
	// that have one, and the deleted index only soft-deleted accounts, by
	// server in primary-key order (what the cleanup task pages through).
	2: {
		`DROP INDEX local_accounts_id_number`,
		`CREATE INDEX local_accounts_id_number ON local_accounts (id_number) WHERE id_number IS NOT NULL`,
		`DROP INDEX local_accounts_deleted`,
		`CREATE INDEX local_accounts_deleted ON local_accounts (server, pk) WHERE deleted IS NOT NULL`,
	},
	// Task locks and plans beside the records, so a serving bridge and the CLI
	// sharing the database exclude each other and see the same held plans. A
	// lock row stays after release (expires 0) to keep its fencing token.
	3: {
		`CREATE TABLE local_task_locks (
			scope TEXT NOT NULL,
			name TEXT NOT NULL,
			owner TEXT NOT NULL,
			prev_owner TEXT NOT NULL,
			token BIGINT NOT NULL,
			expires BIGINT NOT NULL,
			PRIMARY KEY (scope, name)
		)`,
		`CREATE TABLE local_task_plans (
			scope TEXT NOT NULL,
			task TEXT NOT NULL,
			id TEXT NOT NULL,
			status TEXT NOT NULL,
			reason TEXT NOT NULL,
			at BIGINT,
			data %BLOB% NOT NULL,
			PRIMARY KEY (scope, task)
		)`,
	},
}

// SchemaVersion is the schema version this program writes.
func SchemaVersion() int { return len(migrations) - 1 }

// migrate brings the schema up to date. It is idempotent and safe when several
// processes start at once: the dialect's lock statement (or SQLite's immediate
// write transaction) serialises them, and each reads the version under it.
func migrate(ctx context.Context, d *Dialect, db *sql.DB, now int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if d.MigrationLock != "" {
		if _, err := tx.ExecContext(ctx, d.MigrationLock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS local_schema_migrations (version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM local_schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if cur > SchemaVersion() {
		return fmt.Errorf("migrate: local directory schema version %d is newer than this program's %d", cur, SchemaVersion())
	}
	if cur == SchemaVersion() {
		return tx.Commit()
	}
	repl := make([]string, 0, 2*len(d.Types))
	for k, v := range d.Types {
		repl = append(repl, k, v)
	}
	r := strings.NewReplacer(repl...)
	for v := cur + 1; v <= SchemaVersion(); v++ {
		for _, stmt := range migrations[v] {
			if _, err := tx.ExecContext(ctx, r.Replace(stmt)); err != nil {
				return fmt.Errorf("migrate: version %d: %w", v, err)
			}
		}
		if _, err := tx.ExecContext(ctx, d.rebind(`INSERT INTO local_schema_migrations (version, applied) VALUES (?, ?)`), v, now); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
