package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/connectsso/connect/scim"
)

// PATCH operation names, lower case. Decode and the Apply functions accept any case.
const (
	OpAdd     = "add"
	OpRemove  = "remove"
	OpReplace = "replace"
)

// MaxOperations bounds the operations of one request. A single operation's value
// is not bounded here (Entra sends thousands of members in one op); the HTTP body
// size limit protects the server.
const MaxOperations = 1000

// Operation is one PATCH operation. Value is the raw JSON value (nil when absent).
type Operation struct {
	Op    string          `json:"op"`
	Path  string          `json:"path,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Request is a PatchOp message (RFC 7644 §3.5.2).
type Request struct {
	Schemas    []string    `json:"schemas"`
	Operations []Operation `json:"Operations"`
}

// Decode parses and checks a PatchOp body: the PatchOp schema URN must be listed,
// there must be 1 to MaxOperations operations, each op must be add, remove or
// replace (any case; Decode lower-cases them), remove needs a path and add and
// replace need a value. Errors are *scim.Error (400 invalidSyntax, or noTarget
// for a remove without path).
func Decode(body []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		var se *scim.Error
		if errors.As(err, &se) {
			return Request{}, se
		}
		return Request{}, scim.BadRequest(scim.ErrTypeInvalidSyntax, "the body is not a valid PatchOp JSON object")
	}
	if dec.More() {
		return Request{}, scim.BadRequest(scim.ErrTypeInvalidSyntax, "unexpected data after the PatchOp object")
	}
	found := false
	for _, s := range req.Schemas {
		if strings.EqualFold(s, scim.SchemaPatchOp) {
			found = true
			break
		}
	}
	if !found {
		return Request{}, scim.BadRequest(scim.ErrTypeInvalidSyntax, "schemas must contain %s", scim.SchemaPatchOp)
	}
	if len(req.Operations) == 0 {
		return Request{}, scim.BadRequest(scim.ErrTypeInvalidSyntax, "Operations must contain at least one operation")
	}
	if len(req.Operations) > MaxOperations {
		return Request{}, scim.BadRequest(scim.ErrTypeInvalidSyntax, "at most %d operations per request", MaxOperations)
	}
	for i := range req.Operations {
		op := &req.Operations[i]
		if err := checkOp(op); err != nil {
			return Request{}, err
		}
	}
	return req, nil
}

// checkOp lower-cases op.Op and checks the op's shape.
func checkOp(op *Operation) error {
	name := strings.ToLower(strings.TrimSpace(op.Op))
	switch name {
	case OpAdd:
		if isNull(op.Value) {
			return scim.BadRequest(scim.ErrTypeInvalidSyntax, "add operation needs a value")
		}
	case OpReplace:
		// A null value unassigns (as in PUT); an absent one is malformed.
		if len(bytes.TrimSpace(op.Value)) == 0 {
			return scim.BadRequest(scim.ErrTypeInvalidSyntax, "replace operation needs a value")
		}
	case OpRemove:
		if strings.TrimSpace(op.Path) == "" {
			return scim.BadRequest(scim.ErrTypeNoTarget, "remove operation needs a path")
		}
	default:
		return scim.BadRequest(scim.ErrTypeInvalidSyntax, "unknown operation %q (want add, remove or replace)", short(op.Op))
	}
	op.Op = name
	return nil
}

// isNull reports whether a raw value is absent or the JSON null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// short truncates client text echoed in an error detail.
func short(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
