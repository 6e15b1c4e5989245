package scimtarget

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

const contentType = "application/scim+json"

// maxResponse bounds a response body the target may send (a group with every
// member of a large course is the largest).
const maxResponse = 256 << 20

// response is a finished exchange with the target.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request, retrying 429 (after Retry-After) and 5xx, timeouts and
// connection failures with exponential backoff. Every request the target is
// sent is safe to repeat: creates are recognised by their key on retry, member
// changes and deletes are idempotent. A final answer of 4xx is mapped to the
// contract's errors; exhaustion of the retries is ErrUnavailable.
func (t *Target) do(ctx context.Context, method, path string, query url.Values, body any, hdr http.Header) (*response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("scim target: encode %s %s: %w", method, path, err)
		}
	}
	u := t.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		resp, err := t.send(ctx, method, u, payload, hdr)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("scim target: %s %s: %w", method, path, ctx.Err())
			}
			lastErr = err
			wait = t.backoff(attempt)
		case resp.status == http.StatusTooManyRequests:
			lastErr = errors.New("429 Too Many Requests")
			wait = retryAfter(resp.header.Get("Retry-After"), t.now())
			if wait <= 0 {
				wait = t.backoff(attempt)
			}
			t.metric("throttled")
		case resp.status >= 500:
			lastErr = fmt.Errorf("%d %s", resp.status, http.StatusText(resp.status))
			wait = t.backoff(attempt)
			if ra := retryAfter(resp.header.Get("Retry-After"), t.now()); ra > 0 {
				wait = ra
			}
		default:
			return resp, nil
		}
		if attempt >= t.cfg.MaxRetries {
			return nil, fmt.Errorf("scim target: %s %s: gave up after %d attempts: %w: %w", method, path, attempt+1, local.ErrUnavailable, lastErr)
		}
		wait = min(wait, t.cfg.MaxRetryWait)
		t.cfg.Logger.DebugContext(ctx, "scim target: retrying", "method", method, "path", path, "attempt", attempt+1, "wait", wait, "err", lastErr)
		t.metric("retried")
		if err := t.cfg.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("scim target: %s %s: %w", method, path, err)
		}
	}
}

func (t *Target) metric(what string) {
	if t.cfg.OnRetry != nil {
		t.cfg.OnRetry(what)
	}
}

func (t *Target) send(ctx context.Context, method, u string, payload []byte, hdr http.Header) (*response, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+t.cfg.Token)
	req.Header.Set("Accept", contentType+", application/json")
	if payload != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := t.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("response over %d bytes", maxResponse)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// backoff is exponential with full jitter: 100 ms, 200 ms, … capped at 10 s.
func (t *Target) backoff(attempt int) time.Duration {
	d := min(100*time.Millisecond<<min(attempt, 10), 10*time.Second)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return at.Sub(now)
	}
	return 0
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// statusErr maps a final non-2xx answer to the contract's errors. The target's
// own text is kept in the message for the log.
func statusErr(op string, resp *response) error {
	var e scim.ErrorResponse
	_ = json.Unmarshal(resp.body, &e)
	detail := e.Detail
	if len(detail) > 200 {
		detail = detail[:200]
	}
	var sentinel error
	switch resp.status {
	case http.StatusNotFound:
		sentinel = local.ErrNotFound
	case http.StatusConflict, http.StatusPreconditionFailed:
		sentinel = local.ErrConflict
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		sentinel = local.ErrInvalid
	case http.StatusNotImplemented:
		sentinel = local.ErrUnsupported
	default: // 401, 403 and anything unexpected: the target is not usable as configured
		sentinel = local.ErrUnavailable
	}
	return fmt.Errorf("scim target: %s: %d %s (scimType %q): %w", op, resp.status, detail, e.ScimType, sentinel)
}

func decode(op string, resp *response, v any) error {
	if err := json.Unmarshal(resp.body, v); err != nil {
		return fmt.Errorf("scim target: %s: malformed response: %w: %w", op, local.ErrUnavailable, err)
	}
	return nil
}

// quote renders s as a SCIM filter string literal (JSON string syntax).
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// listPage is one page of a listing.
type listPage[T any] struct {
	TotalResults int    `json:"totalResults"`
	StartIndex   int    `json:"startIndex"`
	NextCursor   string `json:"nextCursor"`
	Resources    []T    `json:"Resources"`
}

// cursor is the opaque After of a listing on the target: "c:" + the target's
// RFC 9865 cursor, or "i:" + the next 1-based startIndex.
func parseListCursor(after string) (cursor string, index int, err error) {
	switch {
	case after == "":
		return "", 1, nil
	case strings.HasPrefix(after, "c:") && len(after) > 2:
		return after[2:], 0, nil
	case strings.HasPrefix(after, "i:"):
		n, perr := strconv.Atoi(after[2:])
		if perr == nil && n > 1 && strconv.Itoa(n) == after[2:] {
			return "", n, nil
		}
	}
	return "", 0, fmt.Errorf("cursor %q: %w", after, local.ErrInvalid)
}

// list fetches one page of resources at path matching filter. It pages with
// RFC 9865 cursors when the target offers them and by index otherwise, and
// returns the next After ("" at the end), judged on the counts returned and
// totalResults, never on itemsPerPage.
func list[T any](ctx context.Context, t *Target, path, filter, after string, limit int, extra url.Values) ([]T, string, error) {
	cur, index, err := parseListCursor(after)
	if err != nil {
		return nil, "", err
	}
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	q.Set("count", strconv.Itoa(limit))
	useCursor := t.cursors && (after == "" || cur != "")
	if useCursor {
		q.Set("cursor", cur)
	} else {
		q.Set("startIndex", strconv.Itoa(index))
	}
	resp, err := t.do(ctx, http.MethodGet, path, q, nil, nil)
	if err != nil {
		return nil, "", err
	}
	if resp.status != http.StatusOK {
		return nil, "", statusErr("list "+path, resp)
	}
	var page listPage[T]
	if err := decode("list "+path, resp, &page); err != nil {
		return nil, "", err
	}
	if len(page.Resources) > limit {
		return nil, "", fmt.Errorf("scim target: list %s: %d resources for count %d: %w", path, len(page.Resources), limit, local.ErrUnavailable)
	}
	next := ""
	switch {
	case useCursor:
		if page.NextCursor != "" {
			next = "c:" + page.NextCursor
		}
	default:
		if n := index + len(page.Resources); len(page.Resources) > 0 && n <= page.TotalResults {
			next = "i:" + strconv.Itoa(n)
		}
	}
	return page.Resources, next, nil
}

// count returns totalResults of a filter (count=0).
func (t *Target) count(ctx context.Context, path, filter string) (int64, error) {
	q := url.Values{"count": {"0"}}
	if filter != "" {
		q.Set("filter", filter)
	}
	resp, err := t.do(ctx, http.MethodGet, path, q, nil, nil)
	if err != nil {
		return 0, err
	}
	if resp.status != http.StatusOK {
		return 0, statusErr("count "+path, resp)
	}
	var page listPage[json.RawMessage]
	if err := decode("count "+path, resp, &page); err != nil {
		return 0, err
	}
	return int64(page.TotalResults), nil
}

// discover reads the ServiceProviderConfig: RFC 9865 cursors, PATCH and ETags.
// A target that leaves PATCH out is taken not to have it (a merge and PUT is
// always safe); one that leaves ETags out still gets If-Match when it sends
// versions.
func (t *Target) discover(ctx context.Context) error {
	resp, err := t.do(ctx, http.MethodGet, "/ServiceProviderConfig", nil, nil, nil)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return statusErr("service provider config", resp)
	}
	var spc struct {
		Pagination *struct {
			Cursor bool `json:"cursor"`
		} `json:"pagination"`
		Patch *struct {
			Supported scim.Bool `json:"supported"`
		} `json:"patch"`
		Etag *struct {
			Supported scim.Bool `json:"supported"`
		} `json:"etag"`
	}
	if err := decode("service provider config", resp, &spc); err != nil {
		return err
	}
	t.cursors = spc.Pagination != nil && spc.Pagination.Cursor
	t.noPatch.Store(spc.Patch == nil || !bool(spc.Patch.Supported))
	t.etags = spc.Etag == nil || bool(spc.Etag.Supported)
	return nil
}
