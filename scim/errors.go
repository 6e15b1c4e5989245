package scim

import (
	"fmt"
	"net/http"
)

// SCIM error types (RFC 7644 §3.12, RFC 9865).
const (
	ErrTypeInvalidFilter = "invalidFilter"
	ErrTypeTooMany       = "tooMany"
	ErrTypeUniqueness    = "uniqueness"
	ErrTypeMutability    = "mutability"
	ErrTypeInvalidSyntax = "invalidSyntax"
	ErrTypeInvalidPath   = "invalidPath"
	ErrTypeNoTarget      = "noTarget"
	ErrTypeInvalidValue  = "invalidValue"
	ErrTypeInvalidVers   = "invalidVers"
	ErrTypeSensitive     = "sensitive"
	ErrTypeInvalidCursor = "invalidCursor"
	ErrTypeExpiredCursor = "expiredCursor"
	ErrTypeInvalidCount  = "invalidCount"
)

// Error is a SCIM error response (RFC 7644 §3.12). Its Detail is shown to the
// client, so it must never carry internal text (SQL, stack, file paths).
type Error struct {
	Status   int
	ScimType string
	Detail   string
}

// Error returns a one-line description.
func (e *Error) Error() string {
	if e.ScimType != "" {
		return fmt.Sprintf("scim %d %s: %s", e.Status, e.ScimType, e.Detail)
	}
	return fmt.Sprintf("scim %d: %s", e.Status, e.Detail)
}

// Errorf returns a SCIM error with a formatted detail.
func Errorf(status int, scimType, format string, args ...any) *Error {
	return &Error{Status: status, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

// BadRequest returns a 400 error of the given scimType.
func BadRequest(scimType, format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, scimType, format, args...)
}

// ErrorResponse is the JSON body of a SCIM error.
type ErrorResponse struct {
	Schemas  []string `json:"schemas"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail,omitempty"`
	Status   string   `json:"status"`
}

// Response returns the wire body of e.
func (e *Error) Response() ErrorResponse {
	return ErrorResponse{
		Schemas:  []string{SchemaError},
		ScimType: e.ScimType,
		Detail:   e.Detail,
		Status:   fmt.Sprint(e.Status),
	}
}
