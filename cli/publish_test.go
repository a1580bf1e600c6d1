package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"hookd/wire"
)

const testAdminToken = "admin-token-for-publish-tests"

// intakeServer stands in for the intake: it checks the request like hookd
// does, records every line it accepts, and can fail or refuse batches.
type intakeServer struct {
	*httptest.Server
	mu       sync.Mutex
	lines    []string
	requests int
	fail5xx  int // answer the next n requests with 503
}

func newIntakeServer(t *testing.T) *intakeServer {
	t.Helper()
	s := &intakeServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests++
		problem := func(status int, details string, params ...wire.ParamError) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(wire.Problem{Type: "/x", Status: status, Title: http.StatusText(status), Details: details, Params: params})
		}
		switch {
		case r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/webhooks/events"):
			problem(http.StatusNotFound, "no route")
			return
		case r.Header.Get("Authorization") != "Bearer "+testAdminToken:
			problem(http.StatusForbidden, "the admin token is not valid")
			return
		case r.Header.Get("Content-Type") != "application/x-ndjson":
			problem(http.StatusUnsupportedMediaType, "send application/x-ndjson")
			return
		case s.fail5xx > 0:
			s.fail5xx--
			problem(http.StatusServiceUnavailable, "busy")
			return
		}
		var batch []string
		sc := bufio.NewScanner(r.Body)
		for n := 1; sc.Scan(); n++ {
			var ev struct{ Type string }
			if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Type != "entityCreated" {
				// As hookd's intake: the line and field as data, and a
				// name that quotes the request's line number.
				problem(http.StatusBadRequest, "the request body has invalid parameters",
					wire.ParamError{Name: fmt.Sprintf("line %d: type", n), Reason: "must be entityCreated, entityDeleted or entityUpdated", Line: n, Field: "type"},
					wire.ParamError{Name: "body", Reason: "line 2 of this text is not a line number"})
				return
			}
			batch = append(batch, sc.Text())
		}
		s.lines = append(s.lines, batch...)
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"accepted": len(batch), "recorded": 2 * len(batch), "subscriptions": []any{}})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *intakeServer) got() (lines []string, requests int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...), s.requests
}

// eventsFile writes n events, with a blank line after every seventh, and
// replaces the events at the given 1-based event numbers with bad ones.
// It returns the file and the FILE line number of each event.
func eventsFile(t *testing.T, n int, bad map[int]string) (string, []int) {
	t.Helper()
	var b bytes.Buffer
	var lineOf []int
	line := 0
	for i := 1; i <= n; i++ {
		ev := fmt.Sprintf(`{"type":"entityCreated","event":{"entityType":"user","sub":"u%d"},"toe":%d}`, i, 1700000000+i)
		if r, ok := bad[i]; ok {
			ev = r
		}
		b.WriteString(ev + "\n")
		line++
		lineOf = append(lineOf, line)
		if i%7 == 0 {
			b.WriteString("  \n")
			line++
		}
	}
	path := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, lineOf
}

func publishArgs(server string, extra ...string) []string {
	return append([]string{"publish", "--server", server, "--admin-token", testAdminToken,
		"--customer", "9bc867ed-1f10-420f-8d90-398fde4e4779"}, extra...)
}

func TestPublishSendsEveryLineInBatchesAndRetries(t *testing.T) {
	s := newIntakeServer(t)
	s.fail5xx = 1
	file, _ := eventsFile(t, 2345, nil)
	// The FILE comes before some flags: they may be mixed.
	stdout, stderr, err := cliRun(t, t.Context(), publishArgs(s.URL, file, "--batch", "500", "--concurrency", "3")...)
	if err != nil {
		t.Fatalf("publish: %v\nstderr: %s", err, stderr)
	}
	lines, requests := s.got()
	if len(lines) != 2345 {
		t.Fatalf("got %d lines at the intake, want 2345", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Fatalf("got line %s twice", l)
		}
		seen[l] = true
	}
	if requests != 6 { // 5 batches and one retry
		t.Errorf("got %d requests, want 6", requests)
	}
	if want := "2345 lines in 6 requests"; !strings.Contains(stdout, want) {
		t.Errorf("got summary %q, want %q", stdout, want)
	}
	if want := "accepted 2345 events and recorded 4690 deliveries"; !strings.Contains(stdout, want) {
		t.Errorf("got summary %q, want %q", stdout, want)
	}
	if want := "2,345 / 2,345 lines (100%)"; !strings.Contains(stderr, want) || !strings.Contains(stderr, "1 errors") {
		t.Errorf("got progress %q, want %q and 1 errors", stderr, want)
	}
}

func TestPublishStopsAtRefusedBatchWithFileLineNumbers(t *testing.T) {
	s := newIntakeServer(t)
	file, lineOf := eventsFile(t, 40, map[int]string{23: `{"type":"entityBogus","event":{}}`})
	_, _, err := cliRun(t, t.Context(), publishArgs(s.URL, "--batch", "10", "--concurrency", "1", file)...)
	if err == nil {
		t.Fatal("got no error, want the refused batch reported")
	}
	msg := err.Error()
	want := fmt.Sprintf("%s line %d", file, lineOf[22])
	if !strings.Contains(msg, want+": type: must be") {
		t.Errorf("got error %q, want the intake's line 3 named as %q", msg, want)
	}
	if !strings.Contains(msg, "\n  body: line 2 of this text is not a line number") {
		t.Errorf("got error %q, want the texts shown as sent: only the line field is mapped", msg)
	}
	if !strings.Contains(msg, fmt.Sprintf("lines %d-%d", lineOf[20], lineOf[29])) || !strings.Contains(msg, "400 Bad Request") {
		t.Errorf("got error %q, want the batch's FILE lines and the status", msg)
	}
	lines, requests := s.got()
	if len(lines) != 20 || requests != 3 {
		t.Errorf("got %d lines in %d requests, want the 20 lines of the two batches before the refused one, in 3 requests", len(lines), requests)
	}
}

func TestPublishRefusesLineThatIsNotJSON(t *testing.T) {
	s := newIntakeServer(t)
	file, lineOf := eventsFile(t, 30, map[int]string{16: `{"type":"entityCreated",`})
	stdout, _, err := cliRun(t, t.Context(), publishArgs(s.URL, "--batch", "5", "--concurrency", "2", file)...)
	want := fmt.Sprintf("%s line %d: not a JSON object", file, lineOf[15])
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v, want %q", err, want)
	}
	if lines, _ := s.got(); len(lines) != 15 {
		t.Errorf("got %d lines at the intake, want the 15 before the bad line's batch", len(lines))
	}
	if !strings.Contains(stdout, "accepted 15 events") {
		t.Errorf("got summary %q, want 15 events accepted", stdout)
	}
}

func TestPublishDoesNotRetryClientErrors(t *testing.T) {
	s := newIntakeServer(t)
	file, _ := eventsFile(t, 3, nil)
	args := []string{"publish", "--server", s.URL, "--admin-token", "wrong-token-wrong-token", "--customer", "9bc867ed-1f10-420f-8d90-398fde4e4779", file}
	_, _, err := cliRun(t, t.Context(), args...)
	if err == nil || !strings.Contains(err.Error(), "403 Forbidden: the admin token is not valid") {
		t.Fatalf("got %v, want the 403 problem", err)
	}
	if _, requests := s.got(); requests != 1 {
		t.Errorf("got %d requests, want 1 (no retry of a 4xx)", requests)
	}
}

func TestCountLinesSkipsBlankLines(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "a": 1, "a\n": 1, "a\n\n \t\nb": 2, "a\r\nb\r\n\r\n": 2} {
		if got, err := countLines(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("countLines(%q): got %d, %v, want %d", in, got, err, want)
		}
	}
}

// TestPublishIDsAreStable: a line without an id gets a UUIDv5 of the
// file's base name, its line number and content; a line with one keeps it.
func TestPublishIDsAreStable(t *testing.T) {
	p := &publisher{idSpace: uuid.NewSHA1(publishIDSpace, []byte("events.ndjson"))}
	q := &publisher{idSpace: uuid.NewSHA1(publishIDSpace, []byte("other.ndjson"))}
	line := []byte(`{"type":"entityCreated","event":{}}`)
	idOf := func(b []byte) string {
		t.Helper()
		var v struct{ ID string }
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return v.ID
	}
	a := idOf(p.withID(line, 4))
	if _, err := uuid.Parse(a); err != nil || a != idOf(p.withID(line, 4)) {
		t.Errorf("got ids %q and %q for the same line, want one UUID", a, idOf(p.withID(line, 4)))
	}
	for name, other := range map[string]string{
		"another line number": idOf(p.withID(line, 5)),
		"another content":     idOf(p.withID([]byte(`{"type":"entityDeleted","event":{}}`), 4)),
		"another file":        idOf(q.withID(line, 4)),
	} {
		if other == a {
			t.Errorf("%s: got the same id %s", name, a)
		}
	}
	if got := string(p.withID([]byte(`{"id":"x","type":"t"}`), 1)); got != `{"id":"x","type":"t"}` {
		t.Errorf("a line with an id: got %s, want it unchanged", got)
	}
	if got := p.withID([]byte(`{ }`), 1); !json.Valid(got) || idOf(got) == "" {
		t.Errorf("an empty object: got %s, want valid JSON with an id", got)
	}
}
