package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// The helpers of the events' tests: a store on a clock at 03:04:05 (so
// that hours and minutes are easy to name), enabled subscriptions to
// every event type, events recorded n at a time and attempts' results.

// openEvents opens a fresh store whose clock reads 2030-01-02 03:04:05.
func openEvents(t *testing.T, open Opener) (store.Store, *Clock) {
	t.Helper()
	clk := &Clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	return open(t, clk.Now), clk
}

// addEvSub creates an enabled subscription of customer to every event type.
func addEvSub(t *testing.T, db store.Store, customer uuid.UUID, title string) store.Subscription {
	t.Helper()
	s := store.Subscription{
		ID: uuid.New(), CustomerID: customer, Title: title, Endpoint: "https://listener.example/" + title,
		Events: []string{"entityCreated", "entityUpdated", "entityDeleted"}, Enabled: true, CreatedAt: db.Now(), UpdatedAt: db.Now(),
	}
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	return s
}

// setEnabled enables or disables s.
func setEnabled(t *testing.T, db store.Store, s store.Subscription, on bool) {
	t.Helper()
	if _, _, err := db.UpdateSubscription(s.CustomerID, s.ID, func(x *store.Subscription) error { x.Enabled = on; return nil }); err != nil {
		t.Fatalf("update subscription: %v", err)
	}
}

// addN records n events for each of subs and returns the added records.
func addN(t *testing.T, db store.Store, n int, subs ...store.Subscription) []store.Added {
	t.Helper()
	var events []store.NewEvent
	var ds []store.Delivery
	for i := range n {
		events = append(events, store.NewEvent{Type: "entityCreated", Txn: uuid.NewString(), Toe: int64(1000 + i), Payload: fmt.Appendf(nil, `{"sub":"u%d"}`, i)})
		for _, s := range subs {
			ds = append(ds, store.Delivery{SubscriptionID: s.ID, Event: i})
		}
	}
	added, err := db.AddEvents(events, ds)
	if err != nil {
		t.Fatalf("add events: %v", err)
	}
	return added
}

func mustEvent(t *testing.T, db store.Store, s store.Subscription, id uuid.UUID) store.Event {
	t.Helper()
	e, err := db.Event(s.CustomerID, s.ID, id)
	if err != nil {
		t.Fatalf("event %s: %v", id, err)
	}
	return e
}

func mustSummary(t *testing.T, db store.Store, s store.Subscription) store.Summary {
	t.Helper()
	sum, err := db.Summary(s.CustomerID, s.ID)
	if err != nil {
		t.Fatalf("summary: %v", err)
	}
	return sum
}

func checkSummary(t *testing.T, db store.Store, s store.Subscription, succeeded, retrying, failed, exportable uint64) {
	t.Helper()
	got := mustSummary(t, db, s)
	if got.Succeeded != succeeded || got.Retrying != retrying || got.Failed != failed || got.Exportable != exportable {
		t.Fatalf("got summary succeeded=%d retrying=%d failed=%d exportable=%d, want %d %d %d %d",
			got.Succeeded, got.Retrying, got.Failed, got.Exportable, succeeded, retrying, failed, exportable)
	}
}

func historyStates(e store.Event) []store.State {
	var out []store.State
	for _, h := range e.History {
		out = append(out, h.State)
	}
	return out
}

func sameStates(got, want []store.State) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// attempt returns an AttemptResult for event a started now.
func attempt(db store.Store, a store.Added, o store.Outcome, status int, retryAt time.Time) store.AttemptResult {
	return store.AttemptResult{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: db.Now(), JWS: "h.p.s", Outcome: o,
		RetryAt: retryAt, StatusCode: status, Headers: []store.Header{{Name: "X-Test", Value: "1"}}, Reason: "status"}
}

func mustRecord(t *testing.T, db store.Store, rs ...store.AttemptResult) {
	t.Helper()
	if err := db.RecordAttempts(rs); err != nil {
		t.Fatalf("record attempts: %v", err)
	}
}

// failAll fails every event of added at once.
func failAll(t *testing.T, db store.Store, added []store.Added) {
	t.Helper()
	var rs []store.AttemptResult
	for _, a := range added {
		rs = append(rs, attempt(db, a, store.Failed, 301, time.Time{}))
	}
	mustRecord(t, db, rs...)
}

// exportFailures runs an export job of s's unexported failures through the
// store's export API; a completed one moves the watermark.
func exportFailures(t *testing.T, db store.Store, s store.Subscription, state store.ExportState) store.ExportJob {
	t.Helper()
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatalf("create export: %v", err)
	}
	if state == store.ExportCompleted {
		if _, err := db.BeginExportWrite(job.ID, "k"); err != nil {
			t.Fatalf("begin export: %v", err)
		}
		if job, err = db.CompleteExport(job.ID, store.ExportResult{Key: "k"}); err != nil {
			t.Fatalf("complete export: %v", err)
		}
	}
	return job
}

// checkOutcomes compares timeline records.
func checkOutcomes(t *testing.T, got []store.Outcomes, want ...store.Outcomes) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got spans %+v, want %+v", got, want)
	}
	for i := range got {
		if !got[i].Start.Equal(want[i].Start) || got[i].Succeeded != want[i].Succeeded || got[i].Failed != want[i].Failed {
			t.Fatalf("span %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// mustTimeline returns s's hours of the last seven days.
func mustTimeline(t *testing.T, db store.Store, s store.Subscription) []store.Outcomes {
	t.Helper()
	hours, err := db.Timeline(s.CustomerID, s.ID, db.Now().Add(-7*24*time.Hour), db.Now())
	if err != nil {
		t.Fatalf("timeline: %v", err)
	}
	return hours
}

// intakeOf is an intake of one event per id (zero: none) for s.
func intakeOf(s store.Subscription, ids ...uuid.UUID) store.Intake {
	in := store.Intake{CustomerID: s.CustomerID}
	for i, id := range ids {
		in.Events = append(in.Events, store.NewEvent{ID: id, Type: "entityCreated", Txn: uuid.NewString(), Toe: 1, Payload: []byte(`{}`)})
		in.Deliveries = append(in.Deliveries, store.Delivery{SubscriptionID: s.ID, Event: i})
	}
	return in
}
