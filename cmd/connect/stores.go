package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/postgres"
	"github.com/connectsso/connect/scim/store/sqlite"
)

// opener opens a hub store from its full DSN.
type opener func(ctx context.Context, dsn string, log *slog.Logger) (store.Store, error)

// hubBackends picks a store backend by DSN scheme. Explicit on purpose: no init()
// registration (STYLE.md §4).
var hubBackends = map[string]opener{
	"sqlite": func(ctx context.Context, dsn string, log *slog.Logger) (store.Store, error) {
		return sqlite.Open(ctx, dsn, sqlite.Options{Logger: log})
	},
	"postgres":   openPostgres,
	"postgresql": openPostgres,
}

func openPostgres(ctx context.Context, dsn string, log *slog.Logger) (store.Store, error) {
	return postgres.Open(ctx, dsn, postgres.Options{Logger: log})
}

// dsnScheme returns the scheme of "sqlite:PATH" or "postgres://…".
func dsnScheme(dsn string) string {
	s, _, ok := strings.Cut(dsn, ":")
	if !ok {
		return ""
	}
	return strings.ToLower(s)
}

func checkDSN(dsn string) error {
	if dsn == "" {
		return fmt.Errorf("store: not set")
	}
	if _, ok := hubBackends[dsnScheme(dsn)]; !ok {
		var known []string
		for k := range hubBackends {
			known = append(known, k+":")
		}
		sort.Strings(known)
		return fmt.Errorf("store: unknown DSN scheme in %q (want one of %s)", redactDSN(dsn), strings.Join(known, ", "))
	}
	if dsnScheme(dsn) == "sqlite" {
		if _, err := sqlite.Path(dsn); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}

func openHubStore(ctx context.Context, dsn string, log *slog.Logger) (store.Store, error) {
	if err := checkDSN(dsn); err != nil {
		return nil, err
	}
	st, err := hubBackends[dsnScheme(dsn)](ctx, dsn, log)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", redactDSN(dsn), err)
	}
	return st, nil
}

// redactDSN hides a password in a postgres://user:pass@host DSN.
func redactDSN(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return dsn
	}
	userinfo := rest[:at]
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + rest[at+1:]
	}
	return dsn
}
