package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"hookd/store"
)

func TestWriteError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		typ        string
		details    string // in the details when not empty
		challenge  string // WWW-Authenticate prefix when not empty
		internalID bool
	}{
		{"not found", fmt.Errorf("lookup: %w", store.ErrNotFound), 404, "/not-found", "", "", false},
		{"conflict with reason", fmt.Errorf("create: %w", &store.ConflictError{Reason: `a subscription titled "x" already exists`}), 409, "/conflict", `titled "x"`, "", false},
		{"plain conflict", store.ErrConflict, 409, "/conflict", "", "", false},
		{"limit", store.ErrLimit, 409, "/limit-reached", "", "", false},
		{"no space", fmt.Errorf("add events: %w", store.ErrNoSpace), 503, "/insufficient-storage", "nearly full", "", false},
		{"store unavailable", fmt.Errorf("record intake: %w: dial unix /run/postgresql: connection refused", store.ErrUnavailable), 503, "/store-unavailable", "cannot reach its database", "", false},
		{"too large", &http.MaxBytesError{Limit: 10}, 413, "/request-too-large", "10 bytes", "", false},
		{"bearer 401", errUnauthorized("no token"), 401, "/unauthorized", "no token", "Bearer", false},
		{"basic 401", errBadClient("bad client"), 401, "/unauthorized", "bad client", "Basic", false},
		{"forbidden", errForbidden("expired"), 403, "/forbidden", "expired", "", false},
		{"internal", errors.New("open /secret/path/hookd.db: disk on fire"), 500, "/internal-error", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := &Server{Options: Options{Log: zerolog.New(&logs)}}
			w := httptest.NewRecorder()
			s.writeError(w, httptest.NewRequest(http.MethodGet, "/x", nil), tc.err)
			if w.Code != tc.status {
				t.Fatalf("got status %d, want %d", w.Code, tc.status)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("got Content-Type %q, want application/problem+json", ct)
			}
			var p map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if p["type"] != tc.typ || p["status"] != float64(tc.status) || p["title"] != http.StatusText(tc.status) {
				t.Errorf("got %v, want type %s, status %d and its title", p, tc.typ, tc.status)
			}
			if d, _ := p["details"].(string); !strings.Contains(d, tc.details) {
				t.Errorf("got details %q, want %q in them", d, tc.details)
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, tc.challenge) || (tc.challenge == "" && got != "") {
				t.Errorf("got WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			id, _ := p["id"].(string)
			if !tc.internalID {
				if id != "" || logs.Len() != 0 {
					t.Errorf("got id %q and log %q, want neither for a client error", id, logs.String())
				}
				return
			}
			if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
				t.Errorf("got id %q, want 16 hex digits", id)
			}
			if strings.Contains(w.Body.String(), "secret") || strings.Contains(w.Body.String(), "disk") {
				t.Errorf("got body %s, want no internal text", w.Body.String())
			}
			if !strings.Contains(logs.String(), id) || !strings.Contains(logs.String(), "disk on fire") {
				t.Errorf("got log %q, want the id and the internal error", logs.String())
			}
		})
	}
}

func TestHandlerPanicIsInternalError(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{Options: Options{Log: zerolog.New(&logs), APITimeout: DefaultAPITimeout}}
	h := s.handle(func(w http.ResponseWriter, r *http.Request) error { panic("boom at secret place") })
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "secret") {
		t.Errorf("got %d %s, want 500 without the panic text", w.Code, w.Body.String())
	}
	if !strings.Contains(logs.String(), "boom at secret place") {
		t.Errorf("got log %q, want the panic logged", logs.String())
	}
}
