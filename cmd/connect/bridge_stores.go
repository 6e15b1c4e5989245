package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local"
	localpg "github.com/connectsso/connect/bridge/local/postgres"
	"github.com/connectsso/connect/bridge/local/scimtarget"
	localsqlite "github.com/connectsso/connect/bridge/local/sqlite"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/bridge/state/memory"
	recordstate "github.com/connectsso/connect/bridge/state/records"
	redisstate "github.com/connectsso/connect/bridge/state/redis"
)

// localOpener opens a bridge's local directory from its DSN. token is the
// --store-token (SCIM targets only).
type localOpener func(ctx context.Context, dsn, token string, log *slog.Logger) (local.Directory, error)

// bridgeLocalBackends picks the local directory backend by DSN scheme. Explicit
// on purpose: no init() registration (STYLE.md §4).
var bridgeLocalBackends = map[string]localOpener{
	"sqlite": func(ctx context.Context, dsn, _ string, log *slog.Logger) (local.Directory, error) {
		return localsqlite.Open(ctx, dsn, localsqlite.Options{Logger: log})
	},
	"postgres":   openLocalPostgres,
	"postgresql": openLocalPostgres,
	"scim+https": openSCIMTarget,
	"scim+http":  openSCIMTarget,
}

func openLocalPostgres(ctx context.Context, dsn, _ string, log *slog.Logger) (local.Directory, error) {
	return localpg.Open(ctx, dsn, localpg.Options{Logger: log})
}

// openSCIMTarget opens scim+https://host/path?extension=1&metadata=1&hashes=1:
// a site application's own SCIM endpoint (the query flags say what it keeps).
func openSCIMTarget(ctx context.Context, dsn, token string, log *slog.Logger) (local.Directory, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("scim target: %w", err)
	}
	flag := func(k string) bool { b, _ := strconv.ParseBool(u.Query().Get(k)); return b }
	cfg := scimtarget.Config{Token: token, Logger: log,
		Extension: flag("extension"), Metadata: flag("metadata"), PasswordHashes: flag("hashes")}
	u.Scheme = strings.TrimPrefix(u.Scheme, "scim+")
	u.RawQuery = ""
	cfg.BaseURL = u.String()
	return scimtarget.New(ctx, cfg)
}

// stateOpener opens the bridge's state from the --redis URL.
type stateOpener func(ctx context.Context, rawURL string) (state.State, error)

// bridgeStateBackends picks the state backend by URL scheme.
var bridgeStateBackends = map[string]stateOpener{
	"memory": func(context.Context, string) (state.State, error) { return memory.New(memory.Config{}), nil },
	"redis":  openRedisState,
	"rediss": openRedisState,
}

func openRedisState(ctx context.Context, rawURL string) (state.State, error) {
	return redisstate.Open(ctx, rawURL, redisstate.Config{})
}

func knownSchemes[T any](m map[string]T) string {
	var ks []string
	for k := range m {
		ks = append(ks, k+":")
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// checkBridgeStores validates the DSNs without opening anything.
func checkBridgeStores(storeDSN, records, token, redisURL string) error {
	var errs []error
	scheme := dsnScheme(storeDSN)
	if storeDSN == "" {
		errs = append(errs, errors.New("store: not set"))
	} else if _, ok := bridgeLocalBackends[scheme]; !ok {
		errs = append(errs, fmt.Errorf("store: unknown DSN scheme in %q (want one of %s)", redactDSN(storeDSN), knownSchemes(bridgeLocalBackends)))
	} else if scheme == "sqlite" {
		if _, err := localsqlite.Path(storeDSN); err != nil {
			errs = append(errs, fmt.Errorf("store: %w", err))
		}
	}
	if strings.HasPrefix(scheme, "scim+") {
		if token == "" {
			errs = append(errs, errors.New("store-token: required with a SCIM target store"))
		}
		if records == "" {
			errs = append(errs, errors.New("records: a SCIM target cannot hold the bridge's servers and settings; give --records sqlite:PATH or postgres://…"))
		}
	}
	if records != "" {
		if s := dsnScheme(records); s != "sqlite" && s != "postgres" && s != "postgresql" {
			errs = append(errs, fmt.Errorf("records: %q: want sqlite:PATH or postgres://…", redactDSN(records)))
		}
	}
	if redisURL != "" {
		if _, ok := bridgeStateBackends[dsnScheme(redisURL)]; !ok {
			errs = append(errs, fmt.Errorf("redis: unknown URL scheme in %q (want one of %s)", redactDSN(redisURL), knownSchemes(bridgeStateBackends)))
		}
	}
	return errors.Join(errs...)
}

// bridgeStores is what a bridge command opened.
type bridgeStores struct {
	dir     local.Directory
	records bridge.Records
	state   state.State
	closers []func() error
}

func (s *bridgeStores) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
}

// openBridgeStores opens the local directory, the records store and (when
// withState) the state.
func openBridgeStores(ctx context.Context, o bridgeOptions, withState bool) (*bridgeStores, error) {
	if err := checkBridgeStores(o.store, o.records, o.storeToken, o.redis); err != nil {
		return nil, err
	}
	s := &bridgeStores{}
	dir, err := bridgeLocalBackends[dsnScheme(o.store)](ctx, o.store, o.storeToken, o.log)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", redactDSN(o.store), err)
	}
	s.dir = dir
	s.closers = append(s.closers, dir.Close)
	if o.records != "" {
		rd, err := bridgeLocalBackends[dsnScheme(o.records)](ctx, o.records, "", o.log)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("open records %s: %w", redactDSN(o.records), err)
		}
		s.closers = append(s.closers, rd.Close)
		rec, ok := rd.(local.Records)
		if !ok {
			s.Close()
			return nil, fmt.Errorf("records %s: %w", redactDSN(o.records), bridge.ErrNoRecords)
		}
		s.records = rec
	} else if rec, ok := dir.(local.Records); ok {
		s.records = rec
	} else {
		s.Close()
		return nil, fmt.Errorf("store %s: %w; give --records sqlite:PATH or postgres://…", redactDSN(o.store), bridge.ErrNoRecords)
	}
	if withState {
		u := o.redis
		if u == "" {
			u = "memory:"
		}
		st, err := bridgeStateBackends[dsnScheme(u)](ctx, u)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("open state %s: %w", redactDSN(u), err)
		}
		if db, ok := s.records.(recordstate.Store); ok && o.redis == "" {
			// Without Redis, task locks and plans live in the records database
			// every bridge process of the site opens: the CLI sees the serving
			// bridge's held plans and finds its tasks locked.
			st = recordstate.New(st, db, recordstate.Config{})
		}
		s.state = st
		s.closers = append(s.closers, st.Close)
	}
	return s, nil
}
