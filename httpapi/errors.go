package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"hookd/store"
	"hookd/wire"
)

// Error is an error with a client-facing problem description (SPEC section
// 3): the problem body the client reads (its Error method renders it) and
// the headers that go with it.
type Error struct {
	wire.Problem

	challenge   string // WWW-Authenticate of a 401; a Bearer challenge when empty
	noChallenge bool   // a 401 without WWW-Authenticate (token requests with form credentials)
	retryAfter  string // Retry-After of a 429 or 503, in seconds
	location    string // Location of a 409 that names the resource in the way
}

// ParamError names one invalid body parameter.
type ParamError = wire.ParamError

// problem builds an Error; the type is derived from the title.
func problem(status int, typ, details string) *Error {
	return &Error{Problem: wire.Problem{Status: status, Type: "/" + typ, Title: http.StatusText(status), Details: details}}
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

// errBadFormClient is a 401 of the token endpoint to a client that sent its
// credentials in the form. It carries no challenge: no HTTP authentication
// scheme would help, and a Basic challenge would make a browser ask its user
// for a password on a page's behalf.
func errBadFormClient(details string) *Error {
	e := errUnauthorized(details)
	e.noChallenge = true
	return e
}

func errForbidden(details string) *Error { return problem(http.StatusForbidden, "forbidden", details) }

// retryAfterNoSpace is the Retry-After of a refusal for lack of disk
// space: the space comes back when an operator frees some.
const retryAfterNoSpace = 30 * time.Second

// retryAfterUnavailable is the Retry-After of a refusal while the store
// cannot be reached: the database connection is tried again at once.
const retryAfterUnavailable = 5 * time.Second

// storeErrors maps store sentinels to responses; anything else is internal.
var storeErrors = []struct {
	err        error
	status     int
	typ        string
	detail     string
	retryAfter time.Duration
}{
	{store.ErrNotFound, http.StatusNotFound, "not-found", "the resource does not exist", 0},
	{store.ErrConflict, http.StatusConflict, "conflict", "the request conflicts with the resource's state", 0},
	{store.ErrLimit, http.StatusConflict, "limit-reached", "a configured limit was reached", 0},
	{store.ErrNoSpace, http.StatusServiceUnavailable, "insufficient-storage", "hookd's disk is nearly full: nothing was recorded; send the request again later", retryAfterNoSpace},
	{store.ErrUnavailable, http.StatusServiceUnavailable, "store-unavailable", "hookd cannot reach its database: nothing was recorded; send the request again later", retryAfterUnavailable},
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
			if m.retryAfter > 0 {
				p.retryAfter = strconv.Itoa(int(m.retryAfter / time.Second))
			}
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

// writeError writes err as problem JSON. Server errors are logged,
// internal ones with their id.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := toProblem(err)
	// A 5xx with Retry-After is an expected, temporary refusal (a full
	// disk) whose cause is logged once where it is noticed.
	if p.Status >= 500 && p.retryAfter == "" {
		s.Log.Error().Err(err).Str("errorId", p.ID).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
	}
	if p.Status == http.StatusUnauthorized && !p.noChallenge {
		challenge := p.challenge
		if challenge == "" {
			challenge = `Bearer realm="hookd"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if p.retryAfter != "" {
		w.Header().Set("Retry-After", p.retryAfter)
	}
	if p.location != "" {
		w.Header().Set("Location", p.location)
	}
	writeJSONStatus(w, p.Status, "application/problem+json", p)
}
