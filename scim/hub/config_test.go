package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/scim/store"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; nil means valid
	}{
		{name: "valid", cfg: Config{Store: nopStore{}, Listen: "127.0.0.1:0", URL: "https://hub.example.org"}},
		{name: "valid with path", cfg: Config{Store: nopStore{}, Listen: ":8080", URL: "http://127.0.0.1:8080/hub/"}},
		{name: "everything wrong at once",
			cfg:  Config{Listen: "nonsense", URL: "ftp://x?y=1", JournalRetention: time.Minute, StatsInterval: -1},
			want: []string{"store: not set", `listen "nonsense"`, "scheme must be http or https", "query or fragment", "at least 1h", "stats interval"}},
		{name: "missing url", cfg: Config{Store: nopStore{}, Listen: "127.0.0.1:1"}, want: []string{"url: not set"}},
		{name: "bad port", cfg: Config{Store: nopStore{}, Listen: "127.0.0.1:99999", URL: "http://a"}, want: []string{"bad port"}},
		{name: "url without host", cfg: Config{Store: nopStore{}, Listen: "127.0.0.1:1", URL: "http://"}, want: []string{"no host"}},
		{name: "url with credentials", cfg: Config{Store: nopStore{}, Listen: "127.0.0.1:1", URL: "http://u:p@a"}, want: []string{"credentials"}},
		{name: "negative retention", cfg: Config{Store: nopStore{}, Listen: "127.0.0.1:1", URL: "http://a", JournalRetention: -time.Hour}, want: []string{"negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7d", 7 * 24 * time.Hour, true},
		{"168h", 168 * time.Hour, true},
		{" 90m ", 90 * time.Minute, true},
		{"0d", 0, true},
		{"-1h", 0, false},
		{"xd", 0, false},
		{"9999d", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestNormalizeSetting(t *testing.T) {
	tests := []struct {
		key, value, want string
		ok               bool
	}{
		{SettingSyncPasswordHashes, "TRUE", "true", true},
		{SettingSyncPasswordHashes, "0", "false", true},
		{SettingSyncPasswordHashes, "maybe", "", false},
		{SettingJournalRetention, "7d", "168h0m0s", true},
		{SettingJournalRetention, "30m", "", false},
		{"no-such-key", "1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			got, err := NormalizeSetting(tt.key, tt.value)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("NormalizeSetting = %q, %v; want %q ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

// nopStore satisfies store.Store for tests that only check configuration; any
// call panics.
type nopStore struct{ store.Store }
