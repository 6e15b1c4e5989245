package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/connectsso/connect/scim"
)

// client sends SCIM requests to one hub with one admin token over keep-alive
// connections.
type client struct {
	base  string // http://host:port/scim/v2
	token string
	http  *http.Client
}

func newClient(base, token string, conns int) *client {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	return &client{base: base + "/scim/v2", token: token, http: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// do sends a request and returns the status and body. body may be nil, a
// []byte or a value to encode as JSON.
func (c *client) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if r != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
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
