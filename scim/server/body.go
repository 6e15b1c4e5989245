package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	elerrors "github.com/elimity-com/scim/errors"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/password"
)

var (
	errSyntax      = scim.BadRequest(scim.ErrTypeInvalidSyntax, "the request body is not a valid JSON object")
	errNoSchemas   = scim.BadRequest(scim.ErrTypeInvalidSyntax, "the request body has no \"schemas\" attribute")
	errNoPasswords = scim.BadRequest(scim.ErrTypeInvalidValue, "this hub does not accept passwords over SCIM")
)

// readBody reads the (size-limited) request body. A body over the limit yields
// *http.MaxBytesError, which toSCIM turns into 413.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, scim.BadRequest(scim.ErrTypeInvalidSyntax, "the request body could not be read")
	}
	return b, nil
}

// decodeObject parses a JSON object with numbers kept exact, refusing trailing
// data.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errSyntax
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errSyntax
	}
	return m, nil
}

// fromElimity converts an elimity validation error (its messages are fixed
// texts about the request, safe to show).
func fromElimity(e *elerrors.ScimError) *scim.Error {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	return &scim.Error{Status: status, ScimType: string(e.ScimType), Detail: e.Detail}
}

// lookup finds key in m case-insensitively (JSON attribute names are
// case-insensitive, RFC 7643 §2.1).
func lookup(m map[string]any, key string) (string, any, bool) {
	if v, ok := m[key]; ok {
		return key, v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return k, v, true
		}
	}
	return "", nil, false
}

// decodeResource validates a POST/PUT body against rt and decodes it into dst
// (*scim.User or *scim.Group).
//
// elimity validates attribute types and required attributes; before that the
// body is normalised for real clients: Entra ID sends booleans as strings
// ("active": "False"), which elimity would only accept through its global
// SetAllowStringValues switch. Unknown schema URNs, in "schemas" or as extension
// keys, are refused with invalidValue.
func decodeResource(rt *resourceType, raw []byte, dst any) error {
	m, err := decodeObject(raw)
	if err != nil {
		return err
	}
	_, rawSchemas, ok := lookup(m, "schemas")
	if !ok {
		return errNoSchemas
	}
	list, ok := rawSchemas.([]any)
	if !ok || len(list) == 0 {
		return scim.BadRequest(scim.ErrTypeInvalidSyntax, "\"schemas\" must be a non-empty array of schema URNs")
	}
	canon := make([]any, 0, len(list))
	hasCore := false
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return scim.BadRequest(scim.ErrTypeInvalidSyntax, "\"schemas\" must be an array of strings")
		}
		switch {
		case strings.EqualFold(s, rt.rt.Schema.ID):
			hasCore = true
			canon = append(canon, rt.rt.Schema.ID)
		default:
			id, known := rt.extID(s)
			if !known {
				return scim.BadRequest(scim.ErrTypeInvalidValue, "unknown schema %q for %s", s, rt.rt.Name)
			}
			canon = append(canon, id)
		}
	}
	if !hasCore {
		return scim.BadRequest(scim.ErrTypeInvalidValue, "\"schemas\" must contain %s", rt.rt.Schema.ID)
	}
	for k := range m {
		if strings.EqualFold(k, "schemas") {
			delete(m, k)
		}
	}
	m["schemas"] = canon
	for k, v := range m {
		if !strings.HasPrefix(strings.ToLower(k), "urn:") {
			continue
		}
		id, known := rt.extID(k)
		if !known {
			return scim.BadRequest(scim.ErrTypeInvalidValue, "unknown schema extension %q for %s", k, rt.rt.Name)
		}
		if k != id {
			delete(m, k)
			m[id] = v
		}
	}

	normalise(m, rt.rt.Schema.Attributes)
	normalise(m, scim.CommonAttributes())
	if _, se := rt.core.Validate(m); se != nil {
		return fromElimity(se)
	}
	for _, ext := range rt.rt.Extensions {
		v, ok := m[ext.ID]
		if !ok || v == nil {
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return scim.BadRequest(scim.ErrTypeInvalidValue, "%s must be an object", ext.ID)
		}
		normalise(obj, ext.Attributes)
		if _, se := rt.exts[ext.ID].ValidateExtension(obj); se != nil {
			return fromElimity(se)
		}
	}
	clean, err := json.Marshal(m)
	if err != nil {
		return errSyntax
	}
	if err := json.Unmarshal(clean, dst); err != nil {
		var se *scim.Error
		if errors.As(err, &se) {
			return se
		}
		return scim.BadRequest(scim.ErrTypeInvalidValue, "an attribute has a value of the wrong type")
	}
	return nil
}

// extID returns the canonical URN of an extension of rt named s
// (case-insensitive).
func (rt *resourceType) extID(s string) (string, bool) {
	for _, e := range rt.rt.Extensions {
		if strings.EqualFold(e.ID, s) {
			return e.ID, true
		}
	}
	return "", false
}

// normalise rewrites string booleans ("True", "false") into JSON booleans for the
// boolean attributes of attrs, at any depth the table describes.
func normalise(m map[string]any, attrs []scim.Attribute) {
	for k, v := range m {
		for i := range attrs {
			a := &attrs[i]
			if !strings.EqualFold(a.Name, k) {
				continue
			}
			m[k] = normaliseValue(v, a)
		}
	}
}

func normaliseValue(v any, a *scim.Attribute) any {
	switch x := v.(type) {
	case string:
		if a.Type == scim.TypeBoolean {
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true":
				return true
			case "false":
				return false
			}
		}
	case map[string]any:
		if a.Type == scim.TypeComplex {
			normalise(x, a.SubAttributes)
		}
	case []any:
		for i := range x {
			x[i] = normaliseValue(x[i], a)
		}
	}
	return v
}

// hashPassword moves a clear password into the connect passwordHash.
func (h *handler) hashPassword(u *scim.User) error {
	if u.Password == "" {
		return nil
	}
	if h.cfg.HashPassword == nil {
		return errNoPasswords
	}
	hash, err := h.cfg.HashPassword(u.Password)
	u.Password = ""
	if err != nil {
		var se *scim.Error
		if errors.As(err, &se) {
			return se
		}
		// Hashers refuse over-long passwords; the text says nothing secret.
		return scim.BadRequest(scim.ErrTypeInvalidValue, "the password cannot be used")
	}
	if u.Connect == nil {
		u.Connect = &scim.ConnectUser{}
	}
	u.Connect.PasswordHash = hash
	return nil
}

// checkHash refuses a connect passwordHash that login could not use: only
// argon2id PHC strings and bcrypt hashes within the password package's cost
// limits are stored. Without this a provisioning client could store a hash
// that no password opens, or one whose parameters make each login attempt cost
// gigabytes or minutes (DESIGN.md §8). The detail names the problem, never the
// hash.
func checkHash(hash string) error {
	switch err := password.Check(hash); {
	case err == nil:
		return nil
	case errors.Is(err, password.ErrUnknownFormat):
		return errHashFormat
	default:
		return scim.BadRequest(scim.ErrTypeInvalidValue, "passwordHash is unusable (%s): %s", strings.TrimPrefix(err.Error(), "password: "), hashLimits)
	}
}

// hashLimits tells a client what passwordHash may hold (short: SCIM clients
// show details truncated).
var hashLimits = fmt.Sprintf("want argon2id PHC (m ≤ %d KiB, t ≤ %d, p ≤ %d) or bcrypt (cost ≤ %d)",
	password.MaxMemory, password.MaxTime, password.MaxThreads, password.MaxBcryptCost)

var errHashFormat = scim.BadRequest(scim.ErrTypeInvalidValue, "passwordHash is not a hash this hub can verify: %s", hashLimits)
