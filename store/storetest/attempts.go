package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

func init() {
	register(map[string]func(*testing.T, Opener){
		"RecordAttemptsOutcomes":                   testRecordAttemptsOutcomes,
		"DisableFailsWaitingAndLetsInFlightFinish": testDisableFailsWaitingAndLetsInFlightFinish,
		"RetryAfterDisableEndsInFailure":           testRetryAfterDisableEndsInFailure,
	})
}

func testRecordAttemptsOutcomes(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 4, s)
	ok, retry, spent, failed := added[0], added[1], added[2], added[3]
	clk.Add(time.Second)
	retryAt := clk.Now().Add(3 * time.Second)
	mustRecord(t, db,
		attempt(db, ok, store.Delivered, 204, time.Time{}),
		attempt(db, retry, store.Retry, 500, retryAt),
		attempt(db, spent, store.Retry, 500, time.Time{}),
		attempt(db, failed, store.Failed, 302, time.Time{}),
	)
	cases := []struct {
		name    string
		a       store.Added
		state   store.State
		history []store.State
	}{
		{"2xx", ok, store.Success, []store.State{store.AwaitingExecuting, store.Executing, store.Success}},
		{"retry", retry, store.AwaitingRetry, []store.State{store.AwaitingExecuting, store.Executing, store.AwaitingRetry}},
		{"schedule spent", spent, store.Failure, []store.State{store.AwaitingExecuting, store.Executing, store.Failure}},
		{"fail at once", failed, store.Failure, []store.State{store.AwaitingExecuting, store.Executing, store.Failure}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := mustEvent(t, db, s, c.a.ID)
			if e.State != c.state || !sameStates(historyStates(e), c.history) {
				t.Fatalf("got state %s history %v, want %s %v", e.State, historyStates(e), c.state, c.history)
			}
			if e.Attempts != 1 || e.JWS != "h.p.s" || e.Response == nil || len(e.Response.Headers) != 1 {
				t.Errorf("got attempts %d jws %q response %+v, want 1, the token and the response", e.Attempts, e.JWS, e.Response)
			}
			if e.History[1].Attempt != 1 || !e.History[1].At.Equal(clk.Now()) {
				t.Errorf("got executing row %+v, want attempt 1 at the start time", e.History[1])
			}
		})
	}
	if e := mustEvent(t, db, s, retry.ID); !e.DueAt.Equal(retryAt) {
		t.Errorf("got due %v, want %v", e.DueAt, retryAt)
	}
	if e := mustEvent(t, db, s, spent.ID); e.FailSeq != 1 || e.FailedAt.IsZero() {
		t.Errorf("got failSeq %d failedAt %v, want 1 and a time", e.FailSeq, e.FailedAt)
	}
	checkSummary(t, db, s, 1, 1, 2, 2)

	// A second result for a delivered event changes nothing; a result for
	// an event that is gone is ignored.
	mustRecord(t, db, attempt(db, ok, store.Retry, 500, retryAt), store.AttemptResult{SubscriptionID: s.ID, Seq: 9999, Outcome: store.Delivered})
	if e := mustEvent(t, db, s, ok.ID); e.State != store.Success || e.Attempts != 1 {
		t.Errorf("after a duplicate: got %s attempts %d, want success 1", e.State, e.Attempts)
	}

	// A retry to a moved endpoint was signed for it: its token and endpoint
	// replace the stored ones, and its executing row names the endpoint.
	r := attempt(db, retry, store.Delivered, 200, time.Time{})
	r.JWS, r.Endpoint = "other", "https://moved.example/h"
	mustRecord(t, db, r)
	if e := mustEvent(t, db, s, retry.ID); e.State != store.Success || e.Attempts != 2 || e.JWS != "other" || e.Endpoint != r.Endpoint {
		t.Errorf("got %s attempts %d jws %q endpoint %q, want success 2 other %s", e.State, e.Attempts, e.JWS, e.Endpoint, r.Endpoint)
	} else if row := e.History[len(e.History)-2]; row.State != store.Executing || row.Endpoint != r.Endpoint {
		t.Errorf("got executing row %+v, want one naming %s", row, r.Endpoint)
	}
	checkSummary(t, db, s, 2, 0, 2, 2)
	if evs, next, _ := db.DueEvents(s.ID, clk.Now().Add(time.Hour), 10, nil); len(evs) != 0 || !next.IsZero() {
		t.Errorf("got %d due events, want none", len(evs))
	}
}

func testDisableFailsWaitingAndLetsInFlightFinish(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 7, s)
	// Two attempts are in flight when the subscription is disabled; a third event awaits a retry.
	mustRecord(t, db, attempt(db, added[2], store.Retry, 500, clk.Now().Add(time.Minute)))
	setEnabled(t, db, s, false)

	total := 0
	for {
		n, err := db.FailWaiting(s.ID, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 7 {
		t.Fatalf("got %d failed by disable, want 7", total)
	}
	checkSummary(t, db, s, 0, 0, 7, 7)

	// The in-flight attempts finish: a 2xx wins, a retry stays failure.
	mustRecord(t, db, attempt(db, added[0], store.Delivered, 200, time.Time{}), attempt(db, added[1], store.Retry, 500, clk.Now().Add(time.Minute)))
	e0, e1 := mustEvent(t, db, s, added[0].ID), mustEvent(t, db, s, added[1].ID)
	if e0.State != store.Success || e0.FailSeq != 0 {
		t.Errorf("delivered in flight: got %s failSeq %d, want success 0", e0.State, e0.FailSeq)
	}
	if e1.State != store.Failure || !sameStates(historyStates(e1), []store.State{store.AwaitingExecuting, store.Failure, store.Executing, store.Failure}) {
		t.Errorf("retried in flight: got %s %v, want failure after executing", e1.State, historyStates(e1))
	}
	checkSummary(t, db, s, 1, 0, 6, 6)

	// New events of a disabled subscription are stored as failure.
	late := addN(t, db, 1, s)
	if late[0].State != store.Failure {
		t.Errorf("got %s for a new event while disabled, want failure", late[0].State)
	}
	// Re-enabling delivers new events only.
	setEnabled(t, db, s, true)
	if n, _ := db.FailWaiting(s.ID, 10); n != 0 {
		t.Errorf("FailWaiting on an enabled subscription: got %d, want 0", n)
	}
	fresh := addN(t, db, 1, s)
	evs, _, _ := db.DueEvents(s.ID, clk.Now(), 100, nil)
	if len(evs) != 1 || evs[0].ID != fresh[0].ID {
		t.Errorf("after re-enable: got %d due events, want only the new one", len(evs))
	}
}

func testRetryAfterDisableEndsInFailure(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	a := addN(t, db, 1, s)[0]
	// Disabled while the attempt runs, before FailWaiting reaches the event.
	setEnabled(t, db, s, false)
	mustRecord(t, db, attempt(db, a, store.Retry, 503, clk.Now().Add(time.Second)))
	e := mustEvent(t, db, s, a.ID)
	if e.State != store.Failure || e.History[len(e.History)-1].Reason != "status; subscription disabled" {
		t.Fatalf("got %s %+v, want failure (subscription disabled)", e.State, e.History[len(e.History)-1])
	}
	if evs, _, _ := db.DueEvents(s.ID, clk.Now().Add(time.Hour), 10, nil); len(evs) != 0 {
		t.Errorf("got %d due, want 0", len(evs))
	}
}
