package sso

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies reads a comma-separated list of addresses and CIDRs
// (the --trusted-proxies flag), reporting every bad entry.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var bad []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if a, err := netip.ParseAddr(p); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q", p))
			continue
		}
		out = append(out, pfx.Masked())
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("trusted proxies: %s: not an address or CIDR", strings.Join(bad, ", "))
	}
	return out, nil
}

// ClientIP returns the address a request came from for the local form's
// per-address throttle. Behind nginx every request comes from nginx; when
// the peer is a trusted proxy, the right-most address of X-Forwarded-For that
// is not a trusted proxy is the client (the left part is whatever the client
// sent, so it is never believed).
func ClientIP(trusted []netip.Prefix) func(*http.Request) string {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		peer, err := netip.ParseAddr(host)
		if err != nil || !isTrusted(peer) {
			return host
		}
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				return host // a malformed hop: stop believing the header
			}
			if !isTrusted(a) {
				return a.Unmap().String()
			}
		}
		return host
	}
}
