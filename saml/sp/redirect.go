package sp

import (
	"compress/flate"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
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

// redirectURL is crewjam's AuthnRequest.Redirect for an unsigned request
// (the default: hubs do not require signed AuthnRequests, see
// Config.SignAuthnRequests): the request deflated and base64-encoded into
// SAMLRequest, then RelayState, after the hub's SSO URL. crewjam made a new
// DEFLATE compressor for every login (flate.NewWriter allocates about 1 MB
// of tables at the level it picks), a third of what the bridge allocated per
// SSO round trip; here one from a pool is reset, at BestSpeed, whose reset
// clears nothing (a 600-byte request compresses about as well either way).
// A signed request still goes through crewjam, which signs the query.
func (s *SP) redirectURL(h *hubSP, req *saml.AuthnRequest, relayState string) (*url.URL, error) {
	if h.sp.SignatureMethod != "" {
		return req.Redirect(relayState, h.sp)
	}
	if len(relayState) > saml.MaxRelayStateLength {
		return nil, fmt.Errorf("RelayState is %d bytes: %w", len(relayState), saml.ErrRelayStateTooLong)
	}
	u, err := url.Parse(req.Destination)
	if err != nil {
		return nil, err
	}
	unsigned := *req
	unsigned.Signature = nil
	doc := etree.NewDocument()
	doc.SetRoot(unsigned.Element())
	var b64 strings.Builder
	enc := base64.NewEncoder(base64.StdEncoding, &b64)
	fw, _ := s.deflaters.Get().(*flate.Writer)
	if fw == nil {
		fw, _ = flate.NewWriter(enc, flate.BestSpeed) // BestSpeed is a valid level: no error
	} else {
		fw.Reset(enc)
	}
	_, err = doc.WriteTo(fw)
	if err == nil {
		err = fw.Close()
	}
	s.deflaters.Put(fw)
	if err == nil {
		err = enc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("encode authn request: %w", err)
	}
	q := "SAMLRequest=" + url.QueryEscape(b64.String())
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	if u.RawQuery != "" {
		u.RawQuery += "&" + q
	} else {
		u.RawQuery = q
	}
	return u, nil
}
