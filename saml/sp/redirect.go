package sp

import (
	"net/url"
	"strings"
)

// maxReturnTo bounds a return-to path.
const maxReturnTo = 2048

// safeReturnTo returns rd when it is a same-origin relative path (what a page
// of the site may send the user back to), and "/" otherwise. It refuses
// absolute and scheme-relative URLs ("//evil", "/\evil", "https:…"), any
// backslash or control character, and the SP's own login and logout routes
// (which would loop).
func safeReturnTo(rd string) string {
	if rd == "" || len(rd) > maxReturnTo || rd[0] != '/' {
		return "/"
	}
	if len(rd) > 1 && (rd[1] == '/' || rd[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil {
		return "/"
	}
	p := u.Path
	if p == PathLogin || p == PathLogout || strings.HasPrefix(p, "/saml/") || strings.HasPrefix(p, PathAuth) {
		return "/"
	}
	return rd
}
