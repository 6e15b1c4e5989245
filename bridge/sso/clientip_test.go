package sso_test

import (
	"net/http/httptest"
	"testing"

	"github.com/connectsso/connect/bridge/sso"
)

func TestClientIP(t *testing.T) {
	trusted, err := sso.ParseTrustedProxies("127.0.0.1, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	ip := sso.ClientIP(trusted)
	for _, tt := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct client", "203.0.113.7:4000", nil, "203.0.113.7"},
		{"direct client's header ignored", "203.0.113.7:4000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"behind nginx", "127.0.0.1:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left part", "127.0.0.1:4000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted hops", "127.0.0.1:4000", []string{"198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"several headers", "127.0.0.1:4000", []string{"1.2.3.4", "198.51.100.1"}, "198.51.100.1"},
		{"all trusted", "127.0.0.1:4000", []string{"10.0.0.1"}, "127.0.0.1"},
		{"no header", "127.0.0.1:4000", nil, "127.0.0.1"},
		{"malformed hop", "127.0.0.1:4000", []string{"198.51.100.1, junk"}, "127.0.0.1"},
		{"ipv6 client", "127.0.0.1:4000", []string{"2001:db8::1"}, "2001:db8::1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/login", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ip(r); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := sso.ParseTrustedProxies("10.0.0.0/8, nope, 1.2.3"); err == nil {
		t.Error("bad entries accepted")
	}
}
