package storetest

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

func init() {
	register(map[string]func(*testing.T, Opener){
		"DueEventsSkipsManyInFlight":        testDueEventsSkipsManyInFlight,
		"AttemptsOfDeletedSubscription":     testAttemptsOfDeletedSubscription,
		"RecordAttemptsSameEventTwice":      testRecordAttemptsSameEventTwice,
		"EventsPageOfNothingCountsAll":      testEventsPageOfNothingCountsAll,
		"RecordIntakeKeyWithEmptyAnswer":    testRecordIntakeKeyWithEmptyAnswer,
		"RecordIntakeDuplicatesAcrossCalls": testRecordIntakeDuplicatesAcrossCalls,
		"RecordIntakeKeyAtOnce":             testRecordIntakeKeyAtOnce,
	})
}

// testDueEventsSkipsManyInFlight: events the caller skips (those in
// flight) take no place in the limit, however many of them come first,
// and next is the due time of the first event past the limit.
func testDueEventsSkipsManyInFlight(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	var added []store.Added
	for range 4 {
		added = append(added, addN(t, db, 150, s)...)
		clk.Add(time.Second)
	}
	inFlight := map[uint64]bool{}
	for _, a := range added[:590] {
		inFlight[store.EventSeq(a.ID)] = true
	}
	skip := func(seq uint64) bool { return inFlight[seq] }
	evs, next, err := db.DueEvents(s.ID, clk.Now(), 100, skip)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 10 || evs[0].ID != added[590].ID || evs[9].ID != added[599].ID || !next.IsZero() {
		t.Fatalf("got %d events and next %v, want the 10 not in flight, oldest first, and no next", len(evs), next)
	}
	evs, next, err = db.DueEvents(s.ID, clk.Now(), 4, skip)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 || evs[3].ID != added[593].ID || !next.Equal(clk.Now().Add(-time.Second)) {
		t.Errorf("with limit 4: got %d events and next %v, want 4 and the fifth's due time %v", len(evs), next, clk.Now().Add(-time.Second))
	}
}

// testAttemptsOfDeletedSubscription: results for the events of a deleted
// subscription are ignored; they count nowhere.
func testAttemptsOfDeletedSubscription(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 2, s)
	if err := db.DeleteSubscription(s.CustomerID, s.ID); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, db, attempt(db, added[0], store.Delivered, 200, time.Time{}), attempt(db, added[1], store.Retry, 503, clk.Now().Add(time.Minute)))
	waiting, retrying, oldest, err := db.Backlog()
	if err != nil || waiting != 0 || retrying != 0 || !oldest.IsZero() {
		t.Errorf("backlog: got %d %d %v, %v; want nothing", waiting, retrying, oldest, err)
	}
	if due, err := db.DueSubscriptions(); err != nil || len(due) != 0 {
		t.Errorf("due subscriptions: got %v, %v; want none", due, err)
	}
}

// testRecordAttemptsSameEventTwice: two results for one event in one call
// are recorded in order.
func testRecordAttemptsSameEventTwice(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	a := addN(t, db, 1, s)[0]
	retry := attempt(db, a, store.Retry, 503, clk.Now().Add(time.Minute))
	retry.Code = store.ReasonStatus5xx
	ok := attempt(db, a, store.Delivered, 204, time.Time{})
	ok.Endpoint = "https://listener.example/s"
	mustRecord(t, db, retry, ok)
	e := mustEvent(t, db, s, a.ID)
	want := []store.State{store.AwaitingExecuting, store.Executing, store.AwaitingRetry, store.Executing, store.Success}
	if e.State != store.Success || e.Attempts != 2 || !sameStates(historyStates(e), want) {
		t.Fatalf("got %s, %d attempts, history %v; want success, 2, %v", e.State, e.Attempts, historyStates(e), want)
	}
	if h := e.History[2]; h.Code != store.ReasonStatus5xx || h.StatusCode != 503 || h.Reason != "status" {
		t.Errorf("retry row: got %+v, want status 503 with its reason and code", h)
	}
	if h := e.History[3]; h.Endpoint != ok.Endpoint || h.Attempt != 2 {
		t.Errorf("second executing row: got %+v, want attempt 2 to %s", h, ok.Endpoint)
	}
	if e.Response == nil || e.Response.StatusCode != 204 || len(e.Response.Headers) != 1 || e.Response.Headers[0] != (store.Header{Name: "X-Test", Value: "1"}) {
		t.Errorf("got response %+v, want the last one's", e.Response)
	}
	checkSummary(t, db, s, 1, 0, 0, 0)
}

// testEventsPageOfNothingCountsAll: a page of no events still counts them.
func testEventsPageOfNothingCountsAll(t *testing.T, open Opener) {
	db, _ := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	addN(t, db, 3, s)
	for _, q := range []store.EventQuery{{}, {State: store.AwaitingExecuting}, {Offset: 5, Limit: 10}} {
		evs, total, err := db.Events(s.CustomerID, s.ID, q)
		if err != nil || len(evs) != 0 || total != 3 {
			t.Errorf("query %+v: got %d events, total %d, %v; want none and 3", q, len(evs), total, err)
		}
	}
}

// testRecordIntakeKeyWithEmptyAnswer: an empty answer is kept and replayed
// as empty.
func testRecordIntakeKeyWithEmptyAnswer(t *testing.T, open Opener) {
	db, _ := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	in := intakeOf(s, uuid.UUID{})
	in.Key, in.RequestHash = "k", sha256.Sum256([]byte("body"))
	in.Answer = func(store.IntakeResult) ([]byte, error) { return nil, nil }
	if _, err := db.RecordIntake(in); err != nil {
		t.Fatal(err)
	}
	res, err := db.RecordIntake(in)
	if err != nil || res.Replay == nil || len(res.Replay) != 0 || len(res.Added) != 0 {
		t.Errorf("repeat: got replay %q (nil: %v), %d added, %v; want an empty replay and nothing added", res.Replay, res.Replay == nil, len(res.Added), err)
	}
}

// testRecordIntakeDuplicatesAcrossCalls: of concurrent requests with the
// same sender's id, exactly one records the event.
func testRecordIntakeDuplicatesAcrossCalls(t *testing.T, open Opener) {
	db, _ := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	id := uuid.New()
	const callers = 8
	added := make(chan int, callers)
	errs := make(chan error, callers)
	for range callers {
		go func() {
			res, err := db.RecordIntake(intakeOf(s, id))
			added <- len(res.Added)
			errs <- err
		}()
	}
	total := 0
	for range callers {
		total += <-added
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if total != 1 {
		t.Errorf("got the event recorded %d times, want once", total)
	}
	checkSummary(t, db, s, 0, 1, 0, 0)
}

// testRecordIntakeKeyAtOnce: of concurrent requests with one
// Idempotency-Key, one records its events and the others replay its
// answer.
func testRecordIntakeKeyAtOnce(t *testing.T, open Opener) {
	db, _ := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	const callers = 8
	type result struct {
		res store.IntakeResult
		err error
	}
	results := make(chan result, callers)
	for i := range callers {
		go func() {
			in := intakeOf(s, uuid.UUID{})
			in.Key, in.RequestHash = "k", sha256.Sum256([]byte("body"))
			in.Answer = func(store.IntakeResult) ([]byte, error) { return fmt.Appendf(nil, "answer %d", i), nil }
			res, err := db.RecordIntake(in)
			results <- result{res, err}
		}()
	}
	recorded := 0
	var answers []string
	for range callers {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		recorded += len(r.res.Added)
		if r.res.Replay != nil {
			answers = append(answers, string(r.res.Replay))
		}
	}
	if recorded != 1 || len(answers) != callers-1 {
		t.Fatalf("got %d events recorded and %d replays, want 1 and %d", recorded, len(answers), callers-1)
	}
	for _, a := range answers {
		if a != answers[0] {
			t.Errorf("got replays %q, want one answer", answers)
			break
		}
	}
	checkSummary(t, db, s, 0, 1, 0, 0)
}
