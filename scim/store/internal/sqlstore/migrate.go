package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// migrations are applied in order; each entry is one version made of
// statements. Released versions are never edited: a change is a new version.
// Type tokens (%PK%, %SERIAL%, %BLOB%) are replaced per dialect.
var migrations = [][]string{
	1: {
		`CREATE TABLE users (
			pk %PK%,
			id TEXT NOT NULL UNIQUE,
			user_name TEXT NOT NULL,
			external_id TEXT,
			display_name TEXT,
			nick_name TEXT,
			profile_url TEXT,
			title TEXT,
			user_type TEXT,
			preferred_language TEXT,
			locale TEXT,
			timezone TEXT,
			formatted_name TEXT,
			family_name TEXT,
			given_name TEXT,
			middle_name TEXT,
			honorific_prefix TEXT,
			honorific_suffix TEXT,
			active INTEGER,
			employee_number TEXT,
			cost_center TEXT,
			organization TEXT,
			division TEXT,
			department TEXT,
			manager_value TEXT,
			manager_display TEXT,
			email_verified INTEGER,
			doc TEXT NOT NULL,
			version BIGINT NOT NULL,
			created BIGINT NOT NULL,
			modified BIGINT NOT NULL
		)`,
		`CREATE UNIQUE INDEX users_user_name ON users (lower(user_name))`,
		`CREATE INDEX users_external_id ON users (external_id)`,
		`CREATE INDEX users_display_name ON users (lower(display_name))`,
		`CREATE INDEX users_employee_number ON users (lower(employee_number))`,
		`CREATE INDEX users_created ON users (created, pk)`,
		`CREATE INDEX users_modified ON users (modified)`,
		`CREATE TABLE user_values (
			user_pk BIGINT NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
			attr TEXT NOT NULL,
			idx INTEGER NOT NULL,
			type TEXT,
			prim INTEGER NOT NULL DEFAULT 0,
			value TEXT,
			display TEXT,
			formatted TEXT,
			street_address TEXT,
			locality TEXT,
			region TEXT,
			postal_code TEXT,
			country TEXT,
			name TEXT,
			PRIMARY KEY (user_pk, attr, idx)
		)`,
		`CREATE INDEX user_values_value ON user_values (attr, lower(value))`,
		`CREATE TABLE groups (
			pk %PK%,
			id TEXT NOT NULL UNIQUE,
			display_name TEXT NOT NULL,
			external_id TEXT,
			kind TEXT,
			version BIGINT NOT NULL,
			created BIGINT NOT NULL,
			modified BIGINT NOT NULL
		)`,
		`CREATE UNIQUE INDEX groups_kind_name ON groups (COALESCE(kind, ''), lower(display_name))`,
		`CREATE INDEX groups_display_name ON groups (lower(display_name))`,
		`CREATE INDEX groups_external_id ON groups (external_id)`,
		`CREATE INDEX groups_created ON groups (created, pk)`,
		`CREATE INDEX groups_modified ON groups (modified)`,
		`CREATE TABLE group_members (
			group_pk BIGINT NOT NULL REFERENCES groups (pk) ON DELETE CASCADE,
			member_id TEXT NOT NULL,
			member_type TEXT NOT NULL,
			PRIMARY KEY (group_pk, member_id)
		)`,
		`CREATE INDEX group_members_member ON group_members (member_id)`,
		`CREATE TABLE changes (
			seq %SERIAL%,
			resource_type TEXT NOT NULL,
			resource_id TEXT NOT NULL,
			op TEXT NOT NULL,
			reason TEXT NOT NULL,
			at BIGINT NOT NULL
		)`,
		`CREATE INDEX changes_at ON changes (at)`,
		`CREATE TABLE store_meta (
			key TEXT PRIMARY KEY,
			value BIGINT NOT NULL
		)`,
		`CREATE TABLE tokens (
			id TEXT PRIMARY KEY,
			name TEXT NOT NULL,
			hash %BLOB% NOT NULL UNIQUE,
			read_only INTEGER NOT NULL,
			client_id TEXT NOT NULL,
			created BIGINT NOT NULL,
			last_used BIGINT NOT NULL DEFAULT 0,
			revoked INTEGER NOT NULL DEFAULT 0
		)`,
		`CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked = 0`,
		`CREATE TABLE settings (
			key TEXT PRIMARY KEY,
			value TEXT NOT NULL
		)`,
		`CREATE TABLE audit (
			id %SERIAL%,
			at BIGINT NOT NULL,
			actor TEXT NOT NULL,
			action TEXT NOT NULL,
			target TEXT NOT NULL,
			detail TEXT NOT NULL
		)`,
	},
	// Resource counters, kept by every create and delete, so that an
	// unfiltered listing's total is one row instead of COUNT(*) over the table.
	2: {
		`INSERT INTO store_meta (key, value) SELECT 'users', COUNT(*) FROM users`,
		`INSERT INTO store_meta (key, value) SELECT 'groups', COUNT(*) FROM groups`,
	},
	// SAML identity provider state (scim/store.IdP): sessions and their
	// participants, registered service providers, signing keys, login
	// throttles.
	3: {
		`CREATE TABLE idp_sessions (
			hash %BLOB% PRIMARY KEY,
			session_index TEXT NOT NULL,
			user_id TEXT NOT NULL,
			created BIGINT NOT NULL,
			expires BIGINT NOT NULL
		)`,
		`CREATE INDEX idp_sessions_user ON idp_sessions (user_id)`,
		`CREATE INDEX idp_sessions_expires ON idp_sessions (expires)`,
		`CREATE TABLE idp_session_participants (
			session_hash %BLOB% NOT NULL REFERENCES idp_sessions (hash) ON DELETE CASCADE,
			sp TEXT NOT NULL,
			seq BIGINT NOT NULL,
			name_id TEXT NOT NULL,
			name_id_format TEXT NOT NULL,
			name_qualifier TEXT NOT NULL,
			sp_name_qualifier TEXT NOT NULL,
			session_index TEXT NOT NULL,
			PRIMARY KEY (session_hash, sp)
		)`,
		`CREATE TABLE idp_service_providers (
			entity_id TEXT PRIMARY KEY,
			metadata %BLOB% NOT NULL,
			source TEXT NOT NULL,
			client_id TEXT NOT NULL,
			created BIGINT NOT NULL,
			modified BIGINT NOT NULL
		)`,
		`CREATE TABLE idp_keys (
			id TEXT PRIMARY KEY,
			algorithm TEXT NOT NULL,
			key_pem %BLOB% NOT NULL,
			cert_pem %BLOB% NOT NULL,
			active_from BIGINT NOT NULL UNIQUE,
			created BIGINT NOT NULL
		)`,
		`CREATE TABLE login_throttle (
			key TEXT PRIMARY KEY,
			failures INTEGER NOT NULL,
			window_start BIGINT NOT NULL,
			locked_until BIGINT NOT NULL
		)`,
	},
	// Client systems (store.Clients) and what the per-bridge Changes feed needs
	// from the journal: "via" is the group whose membership a member row
	// reports, and for a deleted user the groups it was in (" g1 g2 "), so a
	// scoped feed can tell who left a restrict audience without scanning.
	4: {
		`CREATE TABLE clients (
			id TEXT PRIMARY KEY,
			name TEXT NOT NULL,
			url TEXT NOT NULL UNIQUE,
			entity_id TEXT NOT NULL,
			restrict_audience TEXT NOT NULL,
			add_new_audiences INTEGER NOT NULL,
			add_new_courses INTEGER NOT NULL,
			comment TEXT NOT NULL,
			scope_version BIGINT NOT NULL,
			created BIGINT NOT NULL,
			modified BIGINT NOT NULL
		)`,
		`CREATE UNIQUE INDEX clients_name ON clients (lower(name))`,
		`CREATE TABLE client_groups (
			client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
			group_id TEXT NOT NULL,
			idx INTEGER NOT NULL,
			PRIMARY KEY (client_id, group_id)
		)`,
		`ALTER TABLE changes ADD COLUMN via TEXT`,
	},
	// Live rows per block of 4096 primary keys (bucket = pk >> 12), so that
	// an index page deep into the default (pk) order starts from the block
	// holding its position instead of skipping every row before it (see
	// list). The engine's own statements of this version (Dialect.Migrations:
	// the triggers that keep the counts in every write's transaction) run
	// first: on PostgreSQL creating them locks the tables against writers, so
	// the counts below miss no row committed in between.
	5: {
		`CREATE TABLE user_buckets (bucket INTEGER PRIMARY KEY, n BIGINT NOT NULL)`,
		`INSERT INTO user_buckets (bucket, n) SELECT pk >> 12, COUNT(*) FROM users GROUP BY pk >> 12`,
		`CREATE TABLE group_buckets (bucket INTEGER PRIMARY KEY, n BIGINT NOT NULL)`,
		`INSERT INTO group_buckets (bucket, n) SELECT pk >> 12, COUNT(*) FROM groups GROUP BY pk >> 12`,
	},
}

// bucketShift is the pk block size of migration 5 (1 << bucketShift pks).
const bucketShift = 12

// SQLiteMigrations are SQLite's own statements of each version (see
// Dialect.Migrations): triggers that keep user_buckets and group_buckets.
// A block whose last row goes loses its row, so the table holds only blocks
// with live rows.
var SQLiteMigrations = map[int][]string{
	5: append(sqliteBucketsTriggers("users", "user_buckets"), sqliteBucketsTriggers("groups", "group_buckets")...),
}

// sqliteBucketsTriggers are the insert and delete triggers of migration 5
// that keep the per-block counts of table in buckets: the statements are the
// same for users and groups.
func sqliteBucketsTriggers(table, buckets string) []string {
	r := strings.NewReplacer("%T%", table, "%B%", buckets)
	return []string{
		r.Replace(`CREATE TRIGGER %B%_insert AFTER INSERT ON %T% BEGIN
			INSERT INTO %B% (bucket, n) VALUES (NEW.pk >> 12, 1) ON CONFLICT (bucket) DO UPDATE SET n = n + 1;
		END`),
		r.Replace(`CREATE TRIGGER %B%_delete AFTER DELETE ON %T% BEGIN
			UPDATE %B% SET n = n - 1 WHERE bucket = OLD.pk >> 12;
			DELETE FROM %B% WHERE bucket = OLD.pk >> 12 AND n = 0;
		END`),
	}
}

// PostgresBatchCounts is PostgreSQL's Dialect.BatchCounts: the insert
// trigger of user_buckets skips rows inserted while it is in effect (until
// the transaction ends).
const PostgresBatchCounts = `SELECT set_config('connect.user_buckets', 'batch', true)`

// PostgresMigrations are PostgreSQL's own statements of each version (see
// Dialect.Migrations). The trigger functions keep the search_path of the
// migration, so that a write from a session with another one (an operator's
// psql) still finds the counts. The bucket triggers are deferred constraint triggers:
// they run at commit, after the write took the journal lock (Dialect.
// JournalLock), so concurrent writers, which all touch the newest block's
// row, queue for it no earlier than they queue for the journal, and always
// in the same order.
var PostgresMigrations = map[int][]string{
	5: {
		postgresBucketsFunc("user_buckets"),
		`CREATE CONSTRAINT TRIGGER user_buckets_insert AFTER INSERT ON users
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
			WHEN (current_setting('connect.user_buckets', true) IS DISTINCT FROM 'batch')
			EXECUTE FUNCTION connect_user_buckets()`,
		`CREATE CONSTRAINT TRIGGER user_buckets_delete AFTER DELETE ON users
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION connect_user_buckets()`,
		postgresBucketsFunc("group_buckets"),
		`CREATE CONSTRAINT TRIGGER group_buckets AFTER INSERT OR DELETE ON groups
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION connect_group_buckets()`,
	},
}

// postgresBucketsFunc is the trigger function of migration 5 that keeps the
// per-block counts in buckets (user_buckets, group_buckets), named
// connect_<buckets>: the statement is the same for both tables.
func postgresBucketsFunc(buckets string) string {
	return strings.ReplaceAll(`CREATE FUNCTION connect_%B%() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
		BEGIN
			IF TG_OP = 'INSERT' THEN
				INSERT INTO %B% AS b (bucket, n) VALUES (NEW.pk >> 12, 1) ON CONFLICT (bucket) DO UPDATE SET n = b.n + 1;
			ELSE
				UPDATE %B% SET n = n - 1 WHERE bucket = OLD.pk >> 12;
				DELETE FROM %B% WHERE bucket = OLD.pk >> 12 AND n = 0;
			END IF;
			RETURN NULL;
		END $$`, "%B%", buckets)
}

// SchemaVersion is the newest migration version this code knows.
func SchemaVersion() int { return len(migrations) - 1 }

// migrate brings the schema up to date. It is idempotent and safe when several
// processes start at once: the dialect's lock (or SQLite's exclusive write
// transaction) serialises them, and each re-reads the version under it.
func migrate(ctx context.Context, d *Dialect, db *sql.DB, now int64) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer c.Close()
	if d.LockMigrations != nil {
		unlock, err := d.LockMigrations(ctx, c)
		if err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		defer unlock()
	}
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if cur > SchemaVersion() {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", cur, SchemaVersion())
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
		for _, stmt := range append(slices.Clip(d.Migrations[v]), migrations[v]...) {
			if _, err := tx.ExecContext(ctx, r.Replace(stmt)); err != nil {
				return fmt.Errorf("migrate: version %d: %w", v, err)
			}
		}
		if _, err := tx.ExecContext(ctx, d.rebind(`INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`), v, now); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", v, err)
		}
	}
	if d.AfterMigrate != nil {
		if err := d.AfterMigrate(ctx, tx, cur); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// sqliteStats are planner statistics for a new SQLite database: they describe
// a large directory (a million users) so that the query planner picks the
// filter's index over scanning the table in primary-key order, which is what
// it does without statistics. They are deliberately never refreshed
// automatically: PRAGMA optimize on a small or empty database would replace
// them with statistics that mislead the planner once the directory grows. An
// operator's ANALYZE replaces them with measured ones. Format: sqlite_stat1 (table, index, "rows rows-per-key...").
var sqliteStats = [][3]string{
	{"users", "sqlite_autoindex_users_1", "1000000 1"},
	{"users", "users_user_name", "1000000 1"},
	{"users", "users_external_id", "1000000 1"},
	{"users", "users_display_name", "1000000 2"},
	{"users", "users_employee_number", "1000000 1"},
	{"users", "users_created", "1000000 1 1"},
	{"users", "users_modified", "1000000 1"},
	{"user_values", "sqlite_autoindex_user_values_1", "3000000 3 2 1"},
	{"user_values", "user_values_value", "3000000 300000 1"},
	{"groups", "sqlite_autoindex_groups_1", "10000 1"},
	{"groups", "groups_kind_name", "10000 5000 1"},
	{"groups", "groups_display_name", "10000 1"},
	{"groups", "groups_external_id", "10000 1"},
	{"groups", "groups_created", "10000 1 1"},
	{"groups", "groups_modified", "10000 1"},
	{"group_members", "sqlite_autoindex_group_members_1", "5000000 500 1"},
	{"group_members", "group_members_member", "5000000 5"},
	{"changes", "changes_at", "1000000 1"},
}

// SQLiteInitialStats is an AfterMigrate for SQLite: on a new database it
// creates sqlite_stat1 and fills it with sqliteStats.
func SQLiteInitialStats(ctx context.Context, tx *sql.Tx, from int) error {
	if from != 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sqlite_stat1`); err != nil {
		return fmt.Errorf("planner statistics: %w", err)
	}
	for _, st := range sqliteStats {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)`, st[0], st[1], st[2]); err != nil {
			return fmt.Errorf("planner statistics: %w", err)
		}
	}
	// Makes this connection's planner load them now.
	if _, err := tx.ExecContext(ctx, `ANALYZE sqlite_schema`); err != nil {
		return fmt.Errorf("planner statistics: %w", err)
	}
	return nil
}
