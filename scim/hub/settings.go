package hub

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/scim/server"
	"github.com/connectsso/connect/scim/store"
)

// Hub setting keys (DESIGN.md §4). They live in the store so that a running hub sees
// a change without a restart.
const (
	// SettingSyncPasswordHashes ("true"/"false", default false) lets bridges read
	// users' password hashes.
	SettingSyncPasswordHashes = server.SettingSyncPasswordHashes
	// SettingJournalRetention (a duration such as "168h" or "7d", default 7 days) is
	// how long change-journal entries are kept; older cursors get 410 expiredCursor.
	SettingJournalRetention = "journal-retention"
)

// ErrUnknownSetting is returned for a key that is not a hub setting.
var ErrUnknownSetting = errors.New("unknown setting")

// SettingInfo describes one hub setting.
type SettingInfo struct {
	Key         string
	Default     string
	Description string
	// normalize validates a value and returns its canonical form.
	normalize func(string) (string, error)
}

var settings = map[string]SettingInfo{
	SettingSyncPasswordHashes: {
		Key: SettingSyncPasswordHashes, Default: "false",
		Description: "send users' password hashes to bridges",
		normalize: func(v string) (string, error) {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return "", fmt.Errorf("%q is not true or false", v)
			}
			return strconv.FormatBool(b), nil
		},
	},
	SettingJournalRetention: {
		Key: SettingJournalRetention, Default: "168h",
		Description: "how long the change journal is kept (at least 1h; e.g. 72h, 7d)",
		normalize: func(v string) (string, error) {
			d, err := ParseDuration(v)
			if err != nil {
				return "", err
			}
			if d < time.Hour {
				return "", fmt.Errorf("%s is shorter than 1h", d)
			}
			return d.String(), nil
		},
	},
}

// Settings returns the known hub settings sorted by key.
func Settings() []SettingInfo {
	out := make([]SettingInfo, 0, len(settings))
	for _, s := range settings {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// NormalizeSetting validates value for key and returns its canonical form.
// ErrUnknownSetting for a key that is not a hub setting.
func NormalizeSetting(key, value string) (string, error) {
	s, ok := settings[key]
	if !ok {
		return "", fmt.Errorf("%w %q (known: %s)", ErrUnknownSetting, key, knownKeys())
	}
	v, err := s.normalize(value)
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", key, err)
	}
	return v, nil
}

func knownKeys() string {
	var keys []string
	for _, s := range Settings() {
		keys = append(keys, s.Key)
	}
	return strings.Join(keys, ", ")
}

// GetSetting returns the value of a hub setting, or its default when unset.
func GetSetting(ctx context.Context, st store.Store, key string) (string, error) {
	s, ok := settings[key]
	if !ok {
		return "", fmt.Errorf("%w %q (known: %s)", ErrUnknownSetting, key, knownKeys())
	}
	v, err := st.Setting(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return s.Default, nil
	}
	if err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting validates and stores a hub setting and writes an audit entry naming
// actor. It returns the stored (canonical) value.
func SetSetting(ctx context.Context, st store.Store, actor, key, value string) (string, error) {
	v, err := NormalizeSetting(key, value)
	if err != nil {
		return "", err
	}
	if err := st.SetSetting(ctx, key, v); err != nil {
		return "", fmt.Errorf("store setting %s: %w", key, err)
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: actor, Action: "setting.set", Target: key, Detail: v}); err != nil {
		return v, fmt.Errorf("audit setting %s: %w", key, err)
	}
	return v, nil
}

// ParseDuration parses a Go duration ("168h", "90m") or a whole number of days
// ("7d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 3650 {
			return 0, fmt.Errorf("%q is not a duration (e.g. 7d, 168h)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (e.g. 7d, 168h)", s)
	}
	return d, nil
}
