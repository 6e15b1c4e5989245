package idp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
)

// errNotExist is what crewjam expects for an unknown service provider.
var errNotExist = os.ErrNotExist

// ErrBadMetadata is returned for SP metadata the IdP refuses to register.
var ErrBadMetadata = errors.New("idp: unusable service provider metadata")

// MaxMetadataSize bounds SP metadata read from a file or URL.
const MaxMetadataSize = 1 << 20

// ParseSPMetadata parses one SP's metadata (an EntityDescriptor, or an
// EntitiesDescriptor holding exactly one SP) and checks what the IdP relies
// on: an entity ID, an SPSSODescriptor, at least one assertion consumer
// service with the HTTP-POST binding, and every ACS and SLO location an
// http(s) URL (a javascript: or data: URL is refused, not skipped).
func ParseSPMetadata(data []byte) (*saml.EntityDescriptor, error) {
	if len(data) > MaxMetadataSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadMetadata, MaxMetadataSize)
	}
	if err := checkRawLocations(data); err != nil {
		return nil, err
	}
	ed, err := parseOneEntity(data)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(ed.EntityID) == "" {
		return nil, fmt.Errorf("%w: no entityID", ErrBadMetadata)
	}
	if len(ed.SPSSODescriptors) == 0 {
		return nil, fmt.Errorf("%w: %s has no SPSSODescriptor", ErrBadMetadata, ed.EntityID)
	}
	post := 0
	for _, sd := range ed.SPSSODescriptors {
		for _, acs := range sd.AssertionConsumerServices {
			if err := httpURL(acs.Location); err != nil {
				return nil, fmt.Errorf("%w: assertion consumer service %q: %v", ErrBadMetadata, acs.Location, err)
			}
			if acs.Binding == saml.HTTPPostBinding {
				post++
			}
		}
		for _, slo := range sd.SingleLogoutServices {
			if err := httpURL(slo.Location); err != nil {
				return nil, fmt.Errorf("%w: single logout service %q: %v", ErrBadMetadata, slo.Location, err)
			}
		}
	}
	if post == 0 {
		return nil, fmt.Errorf("%w: %s has no assertion consumer service with the HTTP-POST binding", ErrBadMetadata, ed.EntityID)
	}
	return ed, nil
}

func parseOneEntity(data []byte) (*saml.EntityDescriptor, error) {
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMetadata, err)
	}
	switch root.XMLName.Local {
	case "EntityDescriptor":
		// samlsp.ParseMetadata checks the XML round-trips safely before it
		// unmarshals (no namespace tricks).
		ed, err := samlsp.ParseMetadata(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMetadata, err)
		}
		return ed, nil
	case "EntitiesDescriptor":
		var all saml.EntitiesDescriptor
		if err := xml.Unmarshal(data, &all); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMetadata, err)
		}
		var sps []saml.EntityDescriptor
		var walk func(e *saml.EntitiesDescriptor)
		walk = func(e *saml.EntitiesDescriptor) {
			for _, ed := range e.EntityDescriptors {
				if len(ed.SPSSODescriptors) > 0 {
					sps = append(sps, ed)
				}
			}
			for i := range e.EntitiesDescriptors {
				walk(&e.EntitiesDescriptors[i])
			}
		}
		walk(&all)
		if len(sps) != 1 {
			return nil, fmt.Errorf("%w: an EntitiesDescriptor must hold exactly one service provider (found %d)", ErrBadMetadata, len(sps))
		}
		return samlsp.ParseMetadataByEntityID(data, sps[0].EntityID)
	}
	return nil, fmt.Errorf("%w: root element is %s, want EntityDescriptor", ErrBadMetadata, root.XMLName.Local)
}

// checkRawLocations looks at every ACS and SLO Location attribute as written:
// crewjam blanks a location whose binding it does not know instead of
// failing, which would hide a javascript: URL.
func checkRawLocations(data []byte) error {
	d := xml.NewDecoder(strings.NewReader(string(data)))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadMetadata, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "AssertionConsumerService", "SingleLogoutService":
			for _, a := range se.Attr {
				if a.Name.Local == "Location" || a.Name.Local == "ResponseLocation" {
					if err := httpURL(a.Value); err != nil {
						return fmt.Errorf("%w: %s %s %q: %v", ErrBadMetadata, se.Name.Local, a.Name.Local, a.Value, err)
					}
				}
			}
		}
	}
}

func httpURL(s string) error {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("not an http(s) URL")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// LoadSPMetadata reads SP metadata from a local file or an http(s) URL
// (fetched with client, or a 30-second default) and parses it with
// ParseSPMetadata. It returns the raw bytes and the parsed entity.
//
// A URL must be https, unless its host is loopback (a test SP on the same
// machine): metadata carries the keys and ACS URLs the hub trusts, so it must
// not be open to whoever sits on the path. Redirects are refused, not
// followed: the error names where the URL points, so the operator can check
// that address and give it instead. The body is bounded by MaxMetadataSize,
// and the fetch by client's Timeout (30 seconds when it has none).
func LoadSPMetadata(ctx context.Context, client *http.Client, fileOrURL string) ([]byte, *saml.EntityDescriptor, error) {
	var data []byte
	if strings.HasPrefix(fileOrURL, "http://") || strings.HasPrefix(fileOrURL, "https://") {
		var err error
		if data, err = fetchSPMetadata(ctx, client, fileOrURL); err != nil {
			return nil, nil, err
		}
	} else {
		f, err := os.Open(fileOrURL)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		data, err = io.ReadAll(io.LimitReader(f, MaxMetadataSize+1))
		if err != nil {
			return nil, nil, fmt.Errorf("read metadata: %w", err)
		}
	}
	ed, err := ParseSPMetadata(data)
	if err != nil {
		return nil, nil, err
	}
	return data, ed, nil
}

// fetchSPMetadata is the URL half of LoadSPMetadata.
func fetchSPMetadata(ctx context.Context, client *http.Client, rawURL string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("metadata URL %q: not an absolute URL", rawURL)
	}
	if u.Scheme != "https" && !loopbackMetadataHost(u.Hostname()) {
		return nil, fmt.Errorf("metadata URL %s: plain http is refused (the metadata holds the keys the hub trusts); use https", u.Redacted())
	}
	c := &http.Client{}
	if client != nil {
		*c = *client // a copy: the caller's client keeps its own redirect policy
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if c.Timeout <= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("metadata URL %s: %w", u.Redacted(), err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	defer resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		to := loc
		if lu, err := u.Parse(loc); err == nil {
			to = lu.Redacted()
		}
		return nil, fmt.Errorf("fetch metadata %s: HTTP %d redirects to %s; redirects are not followed: check that address and give it as --metadata if it is right", u.Redacted(), resp.StatusCode, to)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch metadata %s: HTTP %d", u.Redacted(), resp.StatusCode)
	}
	if resp.ContentLength > MaxMetadataSize {
		return nil, fmt.Errorf("fetch metadata %s: %w: larger than %d bytes", u.Redacted(), ErrBadMetadata, MaxMetadataSize)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	return data, nil
}

// loopbackMetadataHost reports whether host is localhost or a loopback address.
func loopbackMetadataHost(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
