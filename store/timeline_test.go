package store

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

func mustTimeline(t *testing.T, db *DB, s Subscription) []Hour {
	t.Helper()
	hours, err := db.Timeline(s.CustomerID, s.ID, db.Now().Add(-7*24*time.Hour), db.Now())
	if err != nil {
		t.Fatalf("timeline: %v", err)
	}
	return hours
}

func checkHours(t *testing.T, got []Hour, want ...Hour) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got hours %+v, want %+v", got, want)
	}
	for i := range got {
		if !got[i].Start.Equal(want[i].Start) || got[i].Succeeded != want[i].Succeeded || got[i].Failed != want[i].Failed {
			t.Fatalf("hour %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestTimelineCountsOutcomesByHour(t *testing.T) {
	db, clk := openEventsDB(t) // 03:04:05
	s := addEvSub(t, db, uuid.New(), "s")
	other := addEvSub(t, db, s.CustomerID, "other")
	h3 := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	h4 := h3.Add(time.Hour)

	added := addN(t, db, 3, s)
	mustRecord(t, db,
		attempt(db, added[0], Delivered, 204, time.Time{}),
		attempt(db, added[1], Failed, 302, time.Time{}),
		attempt(db, added[2], Retry, 500, clk.Now().Add(time.Hour)), // no outcome yet
	)
	checkHours(t, mustTimeline(t, db, s), Hour{Start: h3, Succeeded: 1, Failed: 1})

	clk.Add(time.Hour) // 04:04:05
	more := addN(t, db, 1, s)
	mustRecord(t, db,
		attempt(db, added[2], Retry, 500, time.Time{}), // schedule spent: a failure
		attempt(db, more[0], Delivered, 200, time.Time{}),
	)
	// A disabled subscription fails the events of the intake, and its
	// waiting events.
	waiting := addN(t, db, 2, s)
	setEnabled(t, db, s, false)
	if n, err := db.FailWaiting(s.ID, FailWaitingBatch); err != nil || n != len(waiting) {
		t.Fatalf("fail waiting: got %d, %v; want %d", n, err, len(waiting))
	}
	addN(t, db, 1, s)
	checkHours(t, mustTimeline(t, db, s),
		Hour{Start: h3, Succeeded: 1, Failed: 1},
		Hour{Start: h4, Succeeded: 1, Failed: 4})
	checkHours(t, mustTimeline(t, db, other)) // nothing of s's

	// The window bounds the hours returned.
	hours, err := db.Timeline(s.CustomerID, s.ID, h4, h4.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	checkHours(t, hours, Hour{Start: h4, Succeeded: 1, Failed: 4})
	// Another customer's subscription is not found.
	if _, err := db.Timeline(uuid.New(), s.ID, h3, h4); !errors.Is(err, ErrNotFound) {
		t.Errorf("another customer: got %v, want ErrNotFound", err)
	}
	// Purged events stay counted: the timeline keeps its own records.
	if _, err := db.PurgeExpiredEvents(clk.Now().Add(time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	checkHours(t, mustTimeline(t, db, s),
		Hour{Start: h3, Succeeded: 1, Failed: 1},
		Hour{Start: h4, Succeeded: 1, Failed: 4})
}

func TestPurgeTimeline(t *testing.T) {
	db, clk := openEventsDB(t) // 03:04:05
	a := addEvSub(t, db, uuid.New(), "a")
	b := addEvSub(t, db, uuid.New(), "b")
	h3 := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	for range 3 { // hours 03, 04, 05 for both
		for _, s := range []Subscription{a, b} {
			added := addN(t, db, 1, s)
			mustRecord(t, db, attempt(db, added[0], Delivered, 204, time.Time{}))
		}
		clk.Add(time.Hour)
	}
	// A cutoff inside 05:00 keeps that hour: it still holds events of the window.
	n, err := db.PurgeTimeline(h3.Add(2*time.Hour+30*time.Minute), 3)
	if err != nil || n != 3 {
		t.Fatalf("first batch: got %d, %v; want 3 (the limit)", n, err)
	}
	n, err = db.PurgeTimeline(h3.Add(2*time.Hour+30*time.Minute), 3)
	if err != nil || n != 1 {
		t.Fatalf("second batch: got %d, %v; want the 1 left", n, err)
	}
	for _, s := range []Subscription{a, b} {
		checkHours(t, mustTimeline(t, db, s), Hour{Start: h3.Add(2 * time.Hour), Succeeded: 1})
	}

	// A deleted subscription's hours go with its events.
	if err := db.DeleteSubscription(a.CustomerID, a.ID); err != nil {
		t.Fatal(err)
	}
	for {
		_, keys, err := db.PurgeDeleted(a.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		if keys == 0 {
			break
		}
	}
	left := 0
	if err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTimeline).ForEach(func(k, _ []byte) error {
			if uuid.UUID(k[:16]) == a.ID {
				left++
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("got %d timeline records of the deleted subscription, want 0", left)
	}
	checkHours(t, mustTimeline(t, db, b), Hour{Start: h3.Add(2 * time.Hour), Succeeded: 1})
}
