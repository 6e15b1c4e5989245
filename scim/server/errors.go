package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// contentType is the SCIM media type (RFC 7644 §3.1).
const contentType = "application/scim+json"

// errorTable maps store sentinels to SCIM errors: the one place a store error
// becomes a status and scimType. Details are fixed texts, never the cause.
var errorTable = []struct {
	err error
	out scim.Error
}{
	{store.ErrNotFound, scim.Error{Status: http.StatusNotFound, Detail: "resource not found"}},
	{store.ErrConflict, scim.Error{Status: http.StatusConflict, ScimType: scim.ErrTypeUniqueness, Detail: "a unique attribute value is already in use"}},
	{store.ErrPreconditionFailed, scim.Error{Status: http.StatusPreconditionFailed, Detail: "the resource has changed (If-Match does not match)"}},
	{store.ErrExpiredCursor, scim.Error{Status: http.StatusGone, ScimType: scim.ErrTypeExpiredCursor, Detail: "the cursor has expired"}},
	{store.ErrInvalid, scim.Error{Status: http.StatusBadRequest, ScimType: scim.ErrTypeInvalidValue, Detail: "a value is invalid"}},
}

// toSCIM converts err into the SCIM error shown to the client and reports whether
// it is a server fault (to be logged with its cause).
func toSCIM(err error) (*scim.Error, bool) {
	var se *scim.Error
	if errors.As(err, &se) {
		return se, se.Status == http.StatusInternalServerError
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return scim.Errorf(http.StatusRequestEntityTooLarge, "", "request body exceeds %d bytes", mbe.Limit), false
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			out := e.out
			return &out, false
		}
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; 499-style, but SCIM has no such code.
		return &scim.Error{Status: http.StatusServiceUnavailable, Detail: "request cancelled"}, false
	}
	return &scim.Error{Status: http.StatusInternalServerError, Detail: "internal server error"}, true
}

// writeError writes err as a SCIM error body. Internal causes go to the log only
// (elimity gap: it sends any non-ScimError's text to the client as the detail).
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	se, internal := toSCIM(err)
	log := h.log(r)
	if internal {
		log.Error("scim request failed", "status", se.Status, "err", err)
	} else {
		log.Debug("scim request refused", "status", se.Status, "scimType", se.ScimType, "err", err)
	}
	if se.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="connect"`)
	}
	writeJSON(w, se.Status, se.Response())
}

// writeJSON writes v as a SCIM JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal((&scim.Error{Status: status, Detail: "internal server error"}).Response())
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// log returns the request-scoped logger (request id and, once authenticated,
// the token's name attached).
func (h *handler) log(r *http.Request) *slog.Logger {
	l := h.cfg.Logger.With("request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path)
	if t, ok := TokenFrom(r.Context()); ok {
		l = l.With("token", t.Name)
	}
	return l
}
