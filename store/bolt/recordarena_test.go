package bolt

import (
	"hookd/store"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// RecordAttempts writes its records into an arena that the next
// transaction reuses once bbolt has written them: outcomes stored one
// call after the other, and by calls that share a transaction, each keep
// their own token and response.
func TestRecordAttemptsReusesNoLiveArena(t *testing.T) {
	db, _ := openEventsDB(t)
	customer := uuid.New()
	subs := []store.Subscription{addEvSub(t, db, customer, "a"), addEvSub(t, db, customer, "b")}
	added := addN(t, db, 300, subs...)
	// Whole tokens (not made of the events' claims): each record keeps its
	// own bytes, so a reused arena would show.
	results := make([]store.AttemptResult, len(added))
	for i, a := range added {
		results[i] = store.AttemptResult{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: db.Now(),
			Endpoint: "https://listener.example/" + strconv.Itoa(i), JWS: "token-" + strconv.Itoa(i) + "." + uuid.NewString() + ".sig",
			Outcome: store.Delivered, StatusCode: http.StatusNoContent, Headers: []store.Header{{Name: "X-Attempt", Value: strconv.Itoa(i)}}}
	}
	// One call after the other, then calls at once (the group commit puts
	// them in one transaction when they meet).
	for i := 0; i < 200; i += 50 {
		if err := db.RecordAttempts(results[i : i+50]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := 200; i < len(results); i += 10 {
		wg.Go(func() {
			if err := db.RecordAttempts(results[i : i+10]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, a := range added {
		e, err := db.Event(customer, a.SubscriptionID, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if e.JWS != results[i].JWS || e.State != store.Success || e.Response == nil || e.Response.Headers[0].Value != strconv.Itoa(i) {
			t.Fatalf("event %d: token %q, state %v, response %+v; want %q, success, X-Attempt %d", i, e.JWS, e.State, e.Response, results[i].JWS, i)
		}
	}
}
