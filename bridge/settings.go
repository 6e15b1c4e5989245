package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/bridge/local"
)

// RemovalAction is what happens to a local account whose hub user left the
// bridge's scope (DESIGN.md §6).
type RemovalAction string

// Removal actions.
const (
	RemovalKeep    RemovalAction = "keep"    // leave the account as it is
	RemovalSuspend RemovalAction = "suspend" // suspend it (reactivated when back in scope)
	RemovalDelete  RemovalAction = "delete"  // soft delete, purged after the grace period
)

// MappingKey is how account mapping finds the local account of a hub user.
type MappingKey string

// Mapping keys.
const (
	MapUsername MappingKey = "username" // hub userName = local username (case-insensitive)
	MapEmail    MappingKey = "email"    // hub primary email = local email, only when the hub says it is verified
	MapIDNumber MappingKey = "idnumber" // hub enterprise employeeNumber = local ID number
	MapUniqueID MappingKey = "uniqueid" // hub user id (the Connect unique ID) = local ID number
)

// Settings are the bridge's run-time settings (`connect bridge settings`),
// stored in the local directory's records and read at the start of every run,
// so a running bridge sees a change without a restart.
type Settings struct {
	AutoSSO              bool
	MigrateLocalAccounts bool
	AccountMapping       MappingKey
	RemovalAction        RemovalAction
	// Exclusions are the attribute keys (see Attributes) the sync never writes.
	Exclusions []string
	// DeleteGrace is how long a soft-deleted account waits before it is purged.
	DeleteGrace time.Duration

	UsersInterval       time.Duration // incremental users runs
	UsersFullInterval   time.Duration // full reconcile of users
	CollectionsInterval time.Duration
	CollectionsFull     time.Duration // full pass over groups
	CleanupInterval     time.Duration
	// LongPoll is how long a serving bridge waits on the hub's Changes feed
	// between runs (0: poll every interval).
	LongPoll time.Duration
	// ModifiedOverlap is subtracted from the last seen meta.lastModified of a
	// plain SCIM source, so late commits are not missed (duplicates are skipped).
	ModifiedOverlap time.Duration

	// DeleteMaxCount and DeleteMaxPercent are the deletion threshold of one run:
	// more destructive items than either holds the plan. The percent applies only
	// when the run has more than DeletePercentMin destructive items, so a small
	// directory can lose a user without an approval.
	DeleteMaxCount   int
	DeleteMaxPercent int
	DeletePercentMin int
}

// DefaultExclusions are the attributes DESIGN.md §3 marks "not copied".
var DefaultExclusions = []string{
	"userName", "employeeNumber", "title", "organization", "department", "division", "manager",
	"interests", "customFields",
}

// DefaultSettings returns the settings of a new bridge.
func DefaultSettings() Settings {
	return Settings{
		AccountMapping:      MapEmail,
		RemovalAction:       RemovalSuspend,
		Exclusions:          slices.Clone(DefaultExclusions),
		DeleteGrace:         30 * 24 * time.Hour,
		UsersInterval:       time.Minute,
		UsersFullInterval:   24 * time.Hour,
		CollectionsInterval: time.Minute,
		CollectionsFull:     time.Hour,
		CleanupInterval:     time.Hour,
		LongPoll:            20 * time.Second,
		ModifiedOverlap:     time.Minute,
		DeleteMaxCount:      500,
		DeleteMaxPercent:    20,
		DeletePercentMin:    3,
	}
}

// SettingInfo documents one setting key.
type SettingInfo struct {
	Key  string
	Help string
	get  func(*Settings) string
	set  func(*Settings, string) error
}

func boolSetting(key, help string, p func(*Settings) *bool) SettingInfo {
	return SettingInfo{Key: key, Help: help,
		get: func(s *Settings) string { return strconv.FormatBool(*p(s)) },
		set: func(s *Settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("want true or false")
			}
			*p(s) = b
			return nil
		}}
}

func durSetting(key, help string, min time.Duration, p func(*Settings) *time.Duration) SettingInfo {
	return SettingInfo{Key: key, Help: help,
		get: func(s *Settings) string { return FormatDuration(*p(s)) },
		set: func(s *Settings, v string) error {
			d, err := ParseDuration(v)
			if err != nil {
				return err
			}
			if d < min {
				return fmt.Errorf("at least %s", FormatDuration(min))
			}
			*p(s) = d
			return nil
		}}
}

func intSetting(key, help string, lo, hi int, p func(*Settings) *int) SettingInfo {
	return SettingInfo{Key: key, Help: help,
		get: func(s *Settings) string { return strconv.Itoa(*p(s)) },
		set: func(s *Settings, v string) error {
			n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("want a whole number from %d to %d", lo, hi)
			}
			*p(s) = n
			return nil
		}}
}

var settingTable = []SettingInfo{
	boolSetting("auto-sso", "skip the login page and go straight to the hub (one hub only)", func(s *Settings) *bool { return &s.AutoSSO }),
	boolSetting("migrate-local-accounts", "link existing local accounts to hub users (account-mapping)", func(s *Settings) *bool { return &s.MigrateLocalAccounts }),
	{Key: "account-mapping", Help: "how migrate-local-accounts matches: username, email (verified only), idnumber or uniqueid",
		get: func(s *Settings) string { return string(s.AccountMapping) },
		set: func(s *Settings, v string) error {
			switch k := MappingKey(strings.ToLower(v)); k {
			case MapUsername, MapEmail, MapIDNumber, MapUniqueID:
				s.AccountMapping = k
				return nil
			}
			return fmt.Errorf("want username, email, idnumber or uniqueid")
		}},
	{Key: "removal-action", Help: "when a user leaves the bridge's scope: keep, suspend or delete",
		get: func(s *Settings) string { return string(s.RemovalAction) },
		set: func(s *Settings, v string) error {
			switch a := RemovalAction(strings.ToLower(v)); a {
			case RemovalKeep, RemovalSuspend, RemovalDelete:
				s.RemovalAction = a
				return nil
			}
			return fmt.Errorf("want keep, suspend or delete")
		}},
	{Key: "exclusions", Help: "attributes never written (comma-separated; \"default\" for DESIGN.md §3's list, \"none\" for none; division and manager are always excluded: the local directory has no field for them)",
		get: func(s *Settings) string {
			if len(s.Exclusions) == 0 {
				return "none"
			}
			return strings.Join(s.Exclusions, ",")
		},
		set: func(s *Settings, v string) error {
			ex, err := ParseExclusions(v)
			if err != nil {
				return err
			}
			s.Exclusions = ex
			return nil
		}},
	durSetting("delete-grace", "how long soft-deleted accounts wait before the cleanup task purges them", 0, func(s *Settings) *time.Duration { return &s.DeleteGrace }),
	durSetting("users-interval", "interval of incremental users runs", time.Second, func(s *Settings) *time.Duration { return &s.UsersInterval }),
	durSetting("users-full-interval", "interval of full users reconciles", time.Minute, func(s *Settings) *time.Duration { return &s.UsersFullInterval }),
	durSetting("collections-interval", "interval of incremental collections runs", time.Second, func(s *Settings) *time.Duration { return &s.CollectionsInterval }),
	durSetting("collections-full-interval", "interval of full collections runs", time.Minute, func(s *Settings) *time.Duration { return &s.CollectionsFull }),
	durSetting("cleanup-interval", "interval of cleanup runs", time.Second, func(s *Settings) *time.Duration { return &s.CleanupInterval }),
	durSetting("long-poll", "wait on the hub's Changes feed between runs (0 = poll at the interval)", 0, func(s *Settings) *time.Duration { return &s.LongPoll }),
	durSetting("modified-overlap", "overlap of meta.lastModified increments from plain SCIM servers", 0, func(s *Settings) *time.Duration { return &s.ModifiedOverlap }),
	intSetting("delete-threshold-count", "most destructive changes one run applies without approval", 0, 1<<30, func(s *Settings) *int { return &s.DeleteMaxCount }),
	intSetting("delete-threshold-percent", "most destructive changes one run applies without approval, in percent of the server's accounts", 0, 100, func(s *Settings) *int { return &s.DeleteMaxPercent }),
	intSetting("delete-threshold-min", "the percent threshold applies only above this many destructive changes", 0, 1<<30, func(s *Settings) *int { return &s.DeletePercentMin }),
}

// SettingKeys documents every setting, in display order.
func SettingKeys() []SettingInfo { return slices.Clone(settingTable) }

func settingInfo(key string) (SettingInfo, bool) {
	for _, si := range settingTable {
		if si.Key == strings.ToLower(strings.TrimSpace(key)) {
			return si, true
		}
	}
	return SettingInfo{}, false
}

// Get returns the value of key in s.
func (s Settings) Get(key string) (string, error) {
	si, ok := settingInfo(key)
	if !ok {
		return "", fmt.Errorf("%w: unknown key %q", ErrInvalidSetting, key)
	}
	return si.get(&s), nil
}

// Set parses value into key of s.
func (s *Settings) Set(key, value string) error {
	si, ok := settingInfo(key)
	if !ok {
		return fmt.Errorf("%w: unknown key %q (known: %s)", ErrInvalidSetting, key, strings.Join(keyNames(), ", "))
	}
	if err := si.set(s, strings.TrimSpace(value)); err != nil {
		return fmt.Errorf("%w: %s=%q: %v", ErrInvalidSetting, si.Key, value, err)
	}
	return nil
}

func keyNames() []string {
	out := make([]string, len(settingTable))
	for i, si := range settingTable {
		out[i] = si.Key
	}
	return out
}

// Map returns every setting as key → value.
func (s Settings) Map() map[string]string {
	m := make(map[string]string, len(settingTable))
	for _, si := range settingTable {
		m[si.Key] = si.get(&s)
	}
	return m
}

// recordSetting is the Records kind of settings.
const recordSetting = "setting"

// LoadSettings reads the stored settings over the defaults. A stored value that
// no longer parses is reported, never silently replaced.
func LoadSettings(ctx context.Context, r Records) (Settings, error) {
	s := DefaultSettings()
	recs, err := r.ListRecords(ctx, recordSetting)
	if err != nil {
		return s, fmt.Errorf("load settings: %w", err)
	}
	var errs []error
	for _, rec := range recs {
		if _, ok := settingInfo(rec.Key); !ok {
			continue // a key of a newer version: keep it, ignore it
		}
		if err := s.Set(rec.Key, string(rec.Value)); err != nil {
			errs = append(errs, err)
		}
	}
	return s, errors.Join(errs...)
}

// SaveSettings validates and stores key=value pairs, all or none.
func SaveSettings(ctx context.Context, r Records, kv map[string]string) error {
	s, err := LoadSettings(ctx, r)
	if err != nil {
		return err
	}
	var errs []error
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := s.Set(k, kv[k]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, k := range keys {
		si, _ := settingInfo(k)
		if err := r.PutRecord(ctx, local.Record{Kind: recordSetting, Key: si.Key, Value: []byte(si.get(&s))}); err != nil {
			return fmt.Errorf("save setting %s: %w", si.Key, err)
		}
	}
	return nil
}

// ParseDuration parses a Go duration or a number of days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (e.g. 90s, 5m, 2h, 7d)", s)
	}
	return d, nil
}

// FormatDuration prints d as ParseDuration reads it, in days when whole.
func FormatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}
