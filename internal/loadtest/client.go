package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/scim"
)

// client sends SCIM requests to one hub with one admin token over keep-alive
// HTTP/1.1 connections that it holds itself: a request is written whole to an
// idle connection and the answer read back with net/http's response parser.
// http.Transport would add two goroutines per connection and a hand-off
// between them on every request; the load generator shares the machine with
// the hub, so every microsecond it spends is one the hub does not get (the
// report shows the generator's CPU per request beside the hub's).
type client struct {
	addr    string // host:port
	host    string // Host header
	prefix  string // /scim/v2
	auth    string // Authorization header value
	idle    chan *conn
	timeout time.Duration
	dialer  net.Dialer
}

// conn is one keep-alive connection with its read buffer.
type conn struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte // request bytes, reused
}

func newClient(base, token string, conns int) *client {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		panic(fmt.Sprintf("loadtest: hub base URL %q is not http://host:port", base))
	}
	return &client{
		addr: u.Host, host: u.Host, prefix: strings.TrimSuffix(u.Path, "/") + "/scim/v2",
		auth: "Bearer " + token, idle: make(chan *conn, conns), timeout: 2 * time.Minute,
	}
}

// errBeforeAnswer marks a failure on a reused connection before any byte of
// the answer arrived: the hub had closed it while idle.
var errBeforeAnswer = errors.New("connection closed before the answer")

// do sends a request and returns the status and body. body may be nil, a
// []byte or a value to encode as JSON. A GET that fails on a reused
// connection before any answer (the hub closed it while idle) is sent again
// on a new one, as net/http does for idempotent requests.
func (c *client) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return 0, nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		cn, reused, err := c.get(ctx)
		if err != nil {
			return 0, nil, err
		}
		code, out, keep, err := c.roundTrip(ctx, cn, method, path, raw)
		if err != nil {
			cn.nc.Close()
			if reused && attempt == 0 && method == http.MethodGet && errors.Is(err, errBeforeAnswer) {
				continue
			}
			return 0, nil, err
		}
		if keep {
			c.put(cn)
		} else {
			cn.nc.Close()
		}
		return code, out, nil
	}
}

// get returns an idle connection, or dials a new one (reused false).
func (c *client) get(ctx context.Context) (*conn, bool, error) {
	select {
	case cn := <-c.idle:
		return cn, true, nil
	default:
	}
	nc, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, false, err
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}, false, nil
}

// put keeps cn for the next request, or closes it when enough are idle.
func (c *client) put(cn *conn) {
	select {
	case c.idle <- cn:
	default:
		cn.nc.Close()
	}
}

// roundTrip writes one request on cn and reads its answer whole. keep says
// whether the connection may carry another request.
func (c *client) roundTrip(ctx context.Context, cn *conn, method, path string, body []byte) (code int, out []byte, keep bool, err error) {
	if err := cn.nc.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, nil, false, err
	}
	stop := context.AfterFunc(ctx, func() { cn.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	b := cn.buf[:0]
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, c.prefix...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.host...)
	b = append(b, "\r\nAuthorization: "...)
	b = append(b, c.auth...)
	b = append(b, "\r\nUser-Agent: connect-loadtest\r\n"...)
	if body != nil {
		b = append(b, "Content-Type: application/scim+json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	cn.buf = b
	if _, err := cn.nc.Write(b); err != nil {
		return 0, nil, false, fmt.Errorf("%w: %w", errBeforeAnswer, err)
	}
	if _, err := cn.br.Peek(1); err != nil {
		return 0, nil, false, fmt.Errorf("%w: %w", errBeforeAnswer, err)
	}
	resp, err := http.ReadResponse(cn.br, nil)
	if err != nil {
		return 0, nil, false, err
	}
	if resp.ContentLength >= 0 {
		out = make([]byte, resp.ContentLength)
		_, err = io.ReadFull(resp.Body, out)
	} else {
		out, err = io.ReadAll(resp.Body)
	}
	resp.Body.Close()
	if err != nil {
		return 0, nil, false, err
	}
	return resp.StatusCode, out, !resp.Close, nil
}

// expect is do that fails unless the status is want.
func (c *client) expect(ctx context.Context, want int, method, path string, body any) ([]byte, error) {
	status, out, err := c.do(ctx, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status != want {
		return nil, fmt.Errorf("%s %.80s: status %d, want %d: %.300s", method, path, status, want, out)
	}
	return out, nil
}

// listPage is the part of a ListResponse the harness reads.
type listPage struct {
	TotalResults int    `json:"totalResults"`
	NextCursor   string `json:"nextCursor"`
	Resources    []struct {
		ID string `json:"id"`
	} `json:"Resources"`
}

// allUserIDs pages through every user id with RFC 9865 cursors.
func (c *client) allUserIDs(ctx context.Context) ([]string, error) {
	var ids []string
	cursor := ""
	for {
		out, err := c.expect(ctx, http.StatusOK, "GET", "/Users?attributes=id&count=1000&cursor="+url.QueryEscape(cursor), nil)
		if err != nil {
			return nil, err
		}
		var p listPage
		if err := json.Unmarshal(out, &p); err != nil {
			return nil, err
		}
		for _, r := range p.Resources {
			ids = append(ids, r.ID)
		}
		if p.NextCursor == "" {
			return ids, nil
		}
		cursor = p.NextCursor
	}
}

// memberPatch is a PATCH request adding (op "add") or removing (op "remove",
// with a value list, as Entra sends it) members.
func memberPatch(op string, ids []string) []byte {
	members := make([]map[string]string, len(ids))
	for i, id := range ids {
		members[i] = map[string]string{"value": id}
	}
	b, _ := json.Marshal(map[string]any{
		"schemas":    []string{scim.SchemaPatchOp},
		"Operations": []any{map[string]any{"op": op, "path": "members", "value": members}},
	})
	return b
}

// newUser is the POST /Users body of a new user.
func newUser(userName string, i int) []byte {
	b, _ := json.Marshal(map[string]any{
		"schemas":     []string{scim.SchemaUser, scim.SchemaEnterpriseUser},
		"userName":    userName,
		"externalId":  "ext-" + userName,
		"displayName": fmt.Sprintf("New User %d", i),
		"name":        map[string]string{"givenName": "New", "familyName": fmt.Sprintf("User%d", i)},
		"emails":      []map[string]any{{"value": userName + "@example.com", "type": "work", "primary": true}},
		"active":      true,
		scim.SchemaEnterpriseUser: map[string]string{
			"employeeNumber": fmt.Sprintf("9%08d", i),
			"department":     "Load",
		},
	})
	return b
}
