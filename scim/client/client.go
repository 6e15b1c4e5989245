package client

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/connectsso/connect/scim"
)

// Sentinel errors, matched with errors.Is. HTTP-level SCIM errors are also
// returned as *scim.Error (errors.As) carrying status, scimType and detail.
var (
	// ErrNotFound: the server answered 404.
	ErrNotFound = errors.New("scim: not found")
	// ErrUnauthorized: the server refused the token (401 or 403).
	ErrUnauthorized = errors.New("scim: unauthorized")
	// ErrExpiredCursor: a Changes or cursor-paged listing cursor is no longer
	// served (410 expiredCursor); the caller must run a full reconcile.
	ErrExpiredCursor = errors.New("scim: expired cursor")
	// ErrShortPage: a listing ended, or a page came back, with fewer resources
	// than the server's own totalResults and page size promise. The listing is
	// incomplete and must not be used to decide that anything is gone.
	ErrShortPage = errors.New("scim: short page")
	// ErrInconsistentPage: a page repeated resources already listed, or its
	// envelope contradicts itself (missing totalResults, a cursor that loops).
	ErrInconsistentPage = errors.New("scim: inconsistent page")
	// ErrNoChangesFeed: the server has no Changes endpoint (a plain SCIM
	// server); use listings with meta.lastModified instead.
	ErrNoChangesFeed = errors.New("scim: no changes feed")
	// ErrRetriesExhausted wraps the last failure when every attempt failed with
	// a retryable error.
	ErrRetriesExhausted = errors.New("scim: retries exhausted")
)

// Defaults of Config.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultMaxRetries   = 5
	DefaultMinBackoff   = 200 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultMaxRetryWait = 5 * time.Minute
	DefaultPageSize     = 500
	// maxBody bounds a response body (a page of 1,000 users is a few MB).
	maxBody = 256 << 20
)

// Attempt describes one HTTP attempt, for metrics and logs.
type Attempt struct {
	Method   string
	Resource string // first path element after the base URL: Users, Groups, Changes…
	Status   int    // 0 on a network error
	Duration time.Duration
	Retry    bool // another attempt follows
}

// Config configures a Client. BaseURL and Token are required.
type Config struct {
	// BaseURL is the SCIM base, e.g. https://hub.example.org/scim/v2.
	BaseURL string
	// Token is the bearer token. It is never logged.
	Token string
	// HTTPClient overrides the default keep-alive client (its Timeout should be
	// zero: Timeout below applies per attempt). Without a CheckRedirect of its
	// own, the client follows redirects only within the base URL's origin.
	HTTPClient *http.Client
	// Timeout bounds one attempt (default 30s). Long-polls add their wait.
	Timeout time.Duration
	// MaxRetries is how many times a retryable failure is retried (default 5;
	// negative: never).
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff (defaults 200ms, 30s).
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryWait is the longest Retry-After honoured; a longer one fails the
	// request at once (default 5 minutes).
	MaxRetryWait time.Duration
	// PageSize is the count asked per page (default 500).
	PageSize int
	// UserAgent is sent on every request.
	UserAgent string
	// Logger receives retry warnings (default: discard).
	Logger *slog.Logger
	// Jitter returns a value in [0,1) for backoff jitter (default math/rand/v2).
	Jitter func() float64
	// Now is the clock used to read Retry-After dates (default time.Now).
	Now func() time.Time
	// OnAttempt, when set, is called after every HTTP attempt.
	OnAttempt func(Attempt)
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.BaseURL == "" {
		errs = append(errs, errors.New("scim client: BaseURL is required"))
	} else if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("scim client: BaseURL %q is not an http(s) URL", c.BaseURL))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("scim client: Token is required"))
	}
	if c.Timeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.MaxRetryWait < 0 {
		errs = append(errs, errors.New("scim client: durations must not be negative"))
	}
	if c.PageSize < 0 {
		errs = append(errs, errors.New("scim client: PageSize must not be negative"))
	}
	return errors.Join(errs...)
}

// Client talks to one SCIM server. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string
	hc   *http.Client
	log  *slog.Logger

	discMu     sync.Mutex
	discovered bool
	cursors    bool // the server offers RFC 9865 cursors
	maxPage    int  // the server's published maxPageSize, 0 if unknown
}

// NewTransport returns the keep-alive transport a Client uses by default.
// Compression is handled by the client itself (it asks for gzip and decodes it),
// so the transport's transparent decompression is off.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxRetryWait == 0 {
		cfg.MaxRetryWait = DefaultMaxRetryWait
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "connect-scim-client"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := &http.Client{Transport: NewTransport()}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient // the caller's client stays as it was
		hc = &cp
	}
	if hc.CheckRedirect == nil {
		hc.CheckRedirect = sameOriginRedirects
	}
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), hc: hc, log: cfg.Logger}, nil
}

// sameOriginRedirects follows a redirect only within the origin (scheme, host
// and port) of the first request. net/http forwards Authorization to any URL
// with the same host name, so without this an https server redirecting to
// http:// on its own host, or to another port, would receive the bearer
// token in clear or on a service it was never meant for.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	first := via[0].URL
	if !strings.EqualFold(req.URL.Scheme, first.Scheme) || !strings.EqualFold(req.URL.Host, first.Host) {
		return fmt.Errorf("refused a redirect from %s://%s to another origin (%s://%s): the SCIM base URL must name the server's final address",
			first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// BaseURL returns the SCIM base URL without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// PageSize returns the count asked per page.
func (c *Client) PageSize() int { return c.cfg.PageSize }

// response is a fully read response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// get performs an idempotent GET of base+path?query with retries and decodes a
// 2xx JSON body into out. extra extends the per-attempt timeout (long-polls).
func (c *Client) get(ctx context.Context, path string, query url.Values, extra time.Duration, out any) error {
	u := c.base + "/" + strings.TrimLeft(path, "/")
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := c.do(ctx, http.MethodGet, u, resource(path), extra)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return fmt.Errorf("GET %s: decode: %w: %w", path, ErrInconsistentPage, err)
	}
	return nil
}

// resource names the first path element, for metrics ("Users", "Changes").
func resource(path string) string {
	path = strings.TrimLeft(path, "/")
	if i := strings.IndexAny(path, "/?"); i >= 0 {
		path = path[:i]
	}
	return path
}

// do runs the request, retrying retryable failures, and returns a 2xx response
// or an error (a *scim.Error joined with a sentinel for HTTP errors).
func (c *Client) do(ctx context.Context, method, u, res string, extra time.Duration) (response, error) {
	var last error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return response{}, err
		}
		start := time.Now()
		resp, err := c.once(ctx, method, u, extra)
		a := Attempt{Method: method, Resource: res, Status: resp.status, Duration: time.Since(start)}
		wait, retry := c.classify(ctx, resp, err, attempt)
		a.Retry = retry
		if c.cfg.OnAttempt != nil {
			c.cfg.OnAttempt(a)
		}
		if err == nil && resp.status >= 200 && resp.status < 300 {
			return resp, nil
		}
		retryable := isRetryable(resp, err)
		if err == nil {
			err = httpError(resp)
		}
		last = err
		if !retry {
			if attempt > 0 && retryable {
				return response{}, fmt.Errorf("%w after %d attempts: %w", ErrRetriesExhausted, attempt+1, last)
			}
			return response{}, last
		}
		c.log.Warn("scim request failed; retrying", "method", method, "resource", res, "status", resp.status,
			"attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return response{}, fmt.Errorf("%w (last failure: %w)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

// once performs one attempt under its own timeout and reads the whole body so
// the connection goes back to the pool.
func (c *Client) once(ctx context.Context, method, u string, extra time.Duration) (response, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout+extra)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, method, u, nil)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	req.Header.Set("Accept", "application/scim+json, application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	var r io.Reader = io.LimitReader(resp.Body, maxBody+1)
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return response{status: resp.StatusCode}, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = io.LimitReader(zr, maxBody+1)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		// A body cut off mid-way is a network failure: retryable.
		return response{status: resp.StatusCode}, transientError{fmt.Errorf("read body: %w", err)}
	}
	if len(body) > maxBody {
		return response{status: resp.StatusCode}, fmt.Errorf("response body exceeds %d bytes", maxBody)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// transientError marks a failure another attempt may not repeat.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// isRetryable reports whether a failure may succeed on another attempt.
func isRetryable(resp response, err error) bool {
	if err != nil {
		var ne net.Error
		var te transientError
		return errors.As(err, &ne) || errors.As(err, &te) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded)
	}
	switch resp.status {
	case http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// classify decides whether to retry and how long to wait first.
func (c *Client) classify(ctx context.Context, resp response, err error, attempt int) (time.Duration, bool) {
	if err == nil && resp.status >= 200 && resp.status < 300 {
		return 0, false
	}
	if ctx.Err() != nil || attempt >= c.cfg.MaxRetries || !isRetryable(resp, err) {
		return 0, false
	}
	backoff := c.backoff(attempt)
	if err == nil && (resp.status == http.StatusTooManyRequests || resp.status == http.StatusServiceUnavailable) {
		if ra, ok := retryAfter(resp.header.Get("Retry-After"), c.cfg.Now()); ok {
			if ra > c.cfg.MaxRetryWait {
				return 0, false
			}
			// The server said when: wait exactly that (at least a moment, so a
			// "0" does not turn into a busy loop).
			return max(ra, 10*time.Millisecond), true
		}
	}
	return backoff, true
}

// backoff is exponential with "equal jitter": half fixed, half random, so
// retries of many clients spread out but never collapse to zero.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 0; i < attempt && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	half := d / 2
	return half + time.Duration(c.cfg.Jitter()*float64(half))
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(1<<31))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// httpError turns a non-2xx response into a *scim.Error (detail from the SCIM
// error body when there is one) joined with the matching sentinel.
func httpError(resp response) error {
	se := &scim.Error{Status: resp.status, Detail: http.StatusText(resp.status)}
	var body struct {
		ScimType string `json:"scimType"`
		Detail   string `json:"detail"`
	}
	if json.Unmarshal(resp.body, &body) == nil {
		se.ScimType = body.ScimType
		if body.Detail != "" {
			se.Detail = truncate(body.Detail, 300)
		}
	}
	switch {
	case resp.status == http.StatusGone || se.ScimType == scim.ErrTypeExpiredCursor:
		return errors.Join(ErrExpiredCursor, se)
	case resp.status == http.StatusNotFound:
		return errors.Join(ErrNotFound, se)
	case resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden:
		return errors.Join(ErrUnauthorized, se)
	}
	return se
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// GetUser returns the user with that id. ErrNotFound when the server has none.
func (c *Client) GetUser(ctx context.Context, id string, attributes ...string) (scim.User, error) {
	var u scim.User
	q := url.Values{}
	if len(attributes) > 0 {
		q.Set("attributes", strings.Join(attributes, ","))
	}
	err := c.get(ctx, "Users/"+url.PathEscape(id), q, 0, &u)
	return u, err
}

// GetGroup returns the group with that id, with its members when members is
// true. ErrNotFound when the server has none.
func (c *Client) GetGroup(ctx context.Context, id string, members bool) (scim.Group, error) {
	var g scim.Group
	q := url.Values{}
	if !members {
		q.Set("excludedAttributes", "members")
	}
	err := c.get(ctx, "Groups/"+url.PathEscape(id), q, 0, &g)
	return g, err
}

// ServiceProviderConfig is what the client reads of the server's
// /ServiceProviderConfig.
type ServiceProviderConfig struct {
	Filter     struct{ Supported bool } `json:"filter"`
	Sort       struct{ Supported bool } `json:"sort"`
	ETag       struct{ Supported bool } `json:"etag"`
	Pagination *struct {
		Cursor      bool `json:"cursor"`
		Index       bool `json:"index"`
		MaxPageSize int  `json:"maxPageSize"`
	} `json:"pagination"`
}

// CursorPaging reports whether the server offers RFC 9865 cursors.
func (s ServiceProviderConfig) CursorPaging() bool {
	return s.Pagination != nil && s.Pagination.Cursor
}

// Discover reads /ServiceProviderConfig.
func (c *Client) Discover(ctx context.Context) (ServiceProviderConfig, error) {
	var s ServiceProviderConfig
	err := c.get(ctx, "ServiceProviderConfig", nil, 0, &s)
	return s, err
}
