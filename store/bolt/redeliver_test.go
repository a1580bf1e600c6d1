package bolt

import (
	"errors"
	"hookd/store"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRedeliver(t *testing.T) {
	db, clk := openEventsDB(t)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 2, s)
	if _, err := db.Redeliver(s.CustomerID, s.ID, added[0].ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("redeliver awaiting: got %v, want ErrConflict", err)
	}
	if _, err := db.Redeliver(s.CustomerID, s.ID, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("redeliver unknown: got %v, want ErrNotFound", err)
	}
	for range 3 {
		mustRecord(t, db, attempt(db, added[0], store.Retry, 500, clk.Now()))
	}
	mustRecord(t, db, attempt(db, added[0], store.Retry, 500, time.Time{}))
	failAll(t, db, added[1:])
	checkSummary(t, db, s, 0, 0, 2, 2)

	setEnabled(t, db, s, false)
	if _, err := db.Redeliver(s.CustomerID, s.ID, added[0].ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("redeliver on a disabled subscription: got %v, want ErrConflict", err)
	}
	setEnabled(t, db, s, true)
	clk.Add(time.Minute)
	e, err := db.Redeliver(s.CustomerID, s.ID, added[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if e.State != store.AwaitingExecuting || e.RoundStart != 4 || !e.DueAt.Equal(clk.Now()) || e.FailSeq != 0 {
		t.Fatalf("got %s roundStart %d due %v failSeq %d, want awaiting-executing 4 now 0", e.State, e.RoundStart, e.DueAt, e.FailSeq)
	}
	if last := e.History[len(e.History)-1]; last.State != store.AwaitingExecuting || last.Reason != "redelivery requested" {
		t.Errorf("got last history %+v, want a redelivery row", last)
	}
	checkSummary(t, db, s, 0, 1, 1, 1)
	if evs, _, _ := db.DueEvents(s.ID, clk.Now(), 10, nil); len(evs) != 1 || evs[0].ID != added[0].ID {
		t.Errorf("got %d due events, want the redelivered one", len(evs))
	}
}

func TestRedeliverAllInBatches(t *testing.T) {
	db, _ := openEventsDB(t)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 7, s)
	failAll(t, db, added)
	fakeExport(t, db, s, store.ExportCompleted)
	// Two exported events fail again (no failure sequence).
	for _, a := range added[:2] {
		if _, err := db.Redeliver(s.CustomerID, s.ID, a.ID); err != nil {
			t.Fatal(err)
		}
	}
	failAll(t, db, added[:2])

	setEnabled(t, db, s, false)
	if _, err := db.RedeliverAll(s.CustomerID, s.ID, 10); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("disabled: got %v, want ErrConflict", err)
	}
	setEnabled(t, db, s, true)
	total := 0
	for {
		n, err := db.RedeliverAll(s.CustomerID, s.ID, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 7 {
		t.Fatalf("got %d redelivered, want 7", total)
	}
	checkSummary(t, db, s, 0, 7, 0, 0)
	if _, err := db.RedeliverAll(uuid.New(), s.ID, 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other customer: got %v, want ErrNotFound", err)
	}
}
