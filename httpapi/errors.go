package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"hookd/store"
)

// Error is an error with a client-facing problem description (SPEC section 3).
type Error struct {
	Type    string       `json:"type"`
	Status  int          `json:"status"`
	Title   string       `json:"title"`
	Details string       `json:"details,omitempty"`
	Params  []ParamError `json:"invalid-body-params,omitempty"`
	ID      string       `json:"id,omitempty"` // internal errors only: the id in the log line

	challenge  string // WWW-Authenticate of a 401; a Bearer challenge when empty
	retryAfter string // Retry-After of a 429, in seconds
}

// ParamError names one invalid body parameter.
type ParamError struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Error returns the details.
func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Details) }

// problem builds an Error; the type is derived from the title.
func problem(status int, typ, details string) *Error {
	return &Error{Status: status, Type: "/" + typ, Title: http.StatusText(status), Details: details}
}

func errBadRequest(typ, details string) *Error { return problem(http.StatusBadRequest, typ, details) }

func errInvalidParams(params []ParamError) *Error {
	e := problem(http.StatusBadRequest, "invalid-body-params", "the request body has invalid parameters")
	e.Params = params
	return e
}

func errNotFound(details string) *Error { return problem(http.StatusNotFound, "not-found", details) }

func errUnauthorized(details string) *Error {
	return problem(http.StatusUnauthorized, "unauthorized", details)
}

// errBadClient is a 401 of the token endpoint, which takes HTTP Basic client credentials.
func errBadClient(details string) *Error {
	e := errUnauthorized(details)
	e.challenge = `Basic realm="hookd"`
	return e
}

func errForbidden(details string) *Error { return problem(http.StatusForbidden, "forbidden", details) }

// storeErrors maps store sentinels to responses; anything else is internal.
var storeErrors = []struct {
	err    error
	status int
	typ    string
	detail string
}{
	{store.ErrNotFound, http.StatusNotFound, "not-found", "the resource does not exist"},
	{store.ErrConflict, http.StatusConflict, "conflict", "the request conflicts with the resource's state"},
	{store.ErrLimit, http.StatusConflict, "limit-reached", "a configured limit was reached"},
}

// toProblem converts any error into the problem the client sees. Internal
// errors get a fresh id and no internal text.
func toProblem(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range storeErrors {
		if errors.Is(err, m.err) {
			p := problem(m.status, m.typ, m.detail)
			var ce *store.ConflictError
			if errors.As(err, &ce) {
				p.Details = ce.Reason
			}
			return p
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return problem(http.StatusRequestEntityTooLarge, "request-too-large", fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	p := problem(http.StatusInternalServerError, "internal-error", "an internal error occurred; quote the id to the operator")
	p.ID = hex.EncodeToString(id[:])
	return p
}

// writeError writes err as problem JSON. Internal errors are logged with their id.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := toProblem(err)
	if p.Status >= 500 {
		s.Log.Error().Err(err).Str("errorId", p.ID).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
	}
	if p.Status == http.StatusUnauthorized {
		challenge := p.challenge
		if challenge == "" {
			challenge = `Bearer realm="hookd"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if p.retryAfter != "" {
		w.Header().Set("Retry-After", p.retryAfter)
	}
	writeJSONStatus(w, p.Status, "application/problem+json", p)
}
