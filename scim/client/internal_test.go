package client

import (
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"seconds", "7", 7 * time.Second, true},
		{"zero", "0", 0, true},
		{"spaces", " 3 ", 3 * time.Second, true},
		{"negative", "-1", 0, false},
		{"date ahead", now.Add(90 * time.Second).Format("Mon, 02 Jan 2006 15:04:05 GMT"), 90 * time.Second, true},
		{"date past", now.Add(-time.Hour).Format("Mon, 02 Jan 2006 15:04:05 GMT"), 0, true},
		{"garbage", "soon", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := retryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, jitter := range []float64{0, 0.5, 0.999} {
		c, err := New(Config{BaseURL: "http://x", Token: "t", MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
			Jitter: func() float64 { return jitter }})
		if err != nil {
			t.Fatal(err)
		}
		prev := time.Duration(0)
		for attempt := range 8 {
			d := c.backoff(attempt)
			ceil := min(100*time.Millisecond<<attempt, time.Second)
			if d < ceil/2 || d > ceil {
				t.Fatalf("jitter %v attempt %d: backoff %v outside [%v, %v]", jitter, attempt, d, ceil/2, ceil)
			}
			if d < prev {
				t.Fatalf("backoff shrank: %v after %v", d, prev)
			}
			prev = d
		}
	}
}
