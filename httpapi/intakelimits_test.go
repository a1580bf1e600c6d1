package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"hookd/store/bolt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// intakeTarget stores a subscription of cust that takes every event type,
// so that any accepted event is recorded, and returns its id.
func intakeTarget(t *testing.T, db *bolt.DB, cust uuid.UUID) uuid.UUID {
	t.Helper()
	now := time.Now().UTC()
	sub := store.Subscription{ID: uuid.New(), CustomerID: cust, Title: "all events " + uuid.NewString(), Endpoint: "https://example.com/hook",
		Events: EventTypes, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateSubscription(sub, 0); err != nil {
		t.Fatal(err)
	}
	return sub.ID
}

// storedEvents returns how many events subscription sub holds.
func storedEvents(t *testing.T, db *bolt.DB, cust, sub uuid.UUID) int {
	t.Helper()
	_, total, err := db.Events(cust, sub, store.EventQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// eventOfSize is an intake event whose event object, compacted, is exactly
// size bytes (padded with a "pad" member), written with spaces when spaced.
func eventOfSize(t *testing.T, size int, spaced bool) string {
	t.Helper()
	const head = `{"captureApplicationId":"app","captureClientId":"cl","entityType":"user","globalSub":"g","sub":"u","pad":"`
	pad := size - len(head) - len(`"}`)
	if pad < 0 {
		t.Fatalf("size %d is too small for an event", size)
	}
	event := head + strings.Repeat("x", pad) + `"}`
	if spaced {
		event = strings.ReplaceAll(event, `","`, `" , "`)
	}
	return `{"type":"entityCreated","event":` + event + `}`
}

// TestIntakeEventSizeLimit: an event object larger than MaxEventSize
// (compacted) is 413 naming it (with its line in NDJSON), and nothing of
// the request is stored; one of exactly the limit is accepted, as is one
// larger only by its spaces.
func TestIntakeEventSizeLimit(t *testing.T) {
	db, cust, _ := testTenant(t)
	sub := intakeTarget(t, db, cust)
	const limit = 4096
	_, url := testAPI(t, db, Options{MaxEventSize: limit})
	intake := url + "/" + cust.String() + "/webhooks/events"

	refused := []struct {
		name, mediaType, body string
		want                  []string
	}{
		{"one event", mediaJSON, eventOfSize(t, limit+1, false), []string{"event"}},
		{"one line of three", mediaNDJSON, testEvent("u-1") + "\n" + eventOfSize(t, limit+1, false) + "\n" + testEvent("u-3") + "\n", []string{"line 2: event"}},
		{"two lines", mediaNDJSON, eventOfSize(t, 10*limit, false) + "\n\n" + testEvent("u-2") + "\n" + eventOfSize(t, limit+1, true), []string{"line 1: event", "line 4: event"}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			res := callAPI(t, http.MethodPost, intake, testAdminToken, tc.mediaType, strings.NewReader(tc.body))
			if res.Status != http.StatusRequestEntityTooLarge || res.Problem.Type != "/event-too-large" || strings.Join(res.Problem.names(), "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %d %s, want 413 /event-too-large naming %v", res.Status, res.Body, tc.want)
			}
			if n := storedEvents(t, db, cust, sub); n != 0 {
				t.Errorf("got %d events stored, want none", n)
			}
		})
	}

	for _, spaced := range []bool{false, true} {
		res := callAPI(t, http.MethodPost, intake, testAdminToken, mediaJSON, strings.NewReader(eventOfSize(t, limit, spaced)))
		var out intakeResponse
		if res.Status != http.StatusAccepted || json.Unmarshal(res.Body, &out) != nil || out.Recorded != 1 {
			t.Errorf("event of exactly %d bytes (spaced %v): got %d %s, want 202", limit, spaced, res.Status, res.Body)
		}
	}
	events, _, err := db.Events(cust, sub, store.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if len(e.Payload) != limit {
			t.Errorf("got a stored event of %d bytes, want %d (compacted)", len(e.Payload), limit)
		}
	}
}

// TestFanOutStopsWhenTimeIsSpent: the fan-out of a request whose time is
// spent stops and reports it instead of applying more filters.
func TestFanOutStopsWhenTimeIsSpent(t *testing.T) {
	db, cust, _ := testTenant(t)
	s, _ := testAPI(t, db, Options{})
	sub := store.Subscription{ID: uuid.New(), CustomerID: cust, Events: EventTypes, Filter: []byte(`{"required":["entityCreated"]}`)}
	events := []store.NewEvent{{Type: "entityCreated", Payload: []byte(`{"sub":"s"}`)}}

	got, err := s.fanOut(t.Context(), events, []store.Subscription{sub})
	if err != nil || len(got) != 1 {
		t.Fatalf("with time left: got %v, %v; want one delivery", got, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got, err = s.fanOut(ctx, events, []store.Subscription{sub})
	if !errors.Is(err, context.Canceled) || got != nil {
		t.Errorf("with the time spent: got %v, %v; want no delivery and the context's error", got, err)
	}
}
