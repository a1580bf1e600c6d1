package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

func init() {
	register(map[string]func(*testing.T, Opener){
		"TimelineCountsOutcomesByHour": testTimelineCountsOutcomesByHour,
		"PurgeTimeline":                testPurgeTimeline,
		"TimelineMinutes":              testTimelineMinutes,
	})
}

func testTimelineCountsOutcomesByHour(t *testing.T, open Opener) {
	db, clk := openEvents(t, open) // 03:04:05
	s := addEvSub(t, db, uuid.New(), "s")
	other := addEvSub(t, db, s.CustomerID, "other")
	h3 := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	h4 := h3.Add(time.Hour)

	added := addN(t, db, 3, s)
	mustRecord(t, db,
		attempt(db, added[0], store.Delivered, 204, time.Time{}),
		attempt(db, added[1], store.Failed, 302, time.Time{}),
		attempt(db, added[2], store.Retry, 500, clk.Now().Add(time.Hour)), // no outcome yet
	)
	checkOutcomes(t, mustTimeline(t, db, s), store.Outcomes{Start: h3, Succeeded: 1, Failed: 1})

	clk.Add(time.Hour) // 04:04:05
	more := addN(t, db, 1, s)
	mustRecord(t, db,
		attempt(db, added[2], store.Retry, 500, time.Time{}), // schedule spent: a failure
		attempt(db, more[0], store.Delivered, 200, time.Time{}),
	)
	// A disabled subscription fails the events of the intake, and its
	// waiting events.
	waiting := addN(t, db, 2, s)
	setEnabled(t, db, s, false)
	if n, err := db.FailWaiting(s.ID, store.FailWaitingBatch); err != nil || n != len(waiting) {
		t.Fatalf("fail waiting: got %d, %v; want %d", n, err, len(waiting))
	}
	addN(t, db, 1, s)
	checkOutcomes(t, mustTimeline(t, db, s),
		store.Outcomes{Start: h3, Succeeded: 1, Failed: 1},
		store.Outcomes{Start: h4, Succeeded: 1, Failed: 4})
	checkOutcomes(t, mustTimeline(t, db, other)) // nothing of s's

	// The window bounds the hours returned.
	hours, err := db.Timeline(s.CustomerID, s.ID, h4, h4.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, hours, store.Outcomes{Start: h4, Succeeded: 1, Failed: 4})
	// Another customer's subscription is not found.
	if _, err := db.Timeline(uuid.New(), s.ID, h3, h4); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another customer: got %v, want ErrNotFound", err)
	}
	// Purged events stay counted: the timeline keeps its own records.
	if _, err := db.PurgeExpiredEvents(clk.Now().Add(time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, mustTimeline(t, db, s),
		store.Outcomes{Start: h3, Succeeded: 1, Failed: 1},
		store.Outcomes{Start: h4, Succeeded: 1, Failed: 4})
}

func testPurgeTimeline(t *testing.T, open Opener) {
	db, clk := openEvents(t, open) // 03:04:05
	a := addEvSub(t, db, uuid.New(), "a")
	b := addEvSub(t, db, uuid.New(), "b")
	h3 := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	for range 3 { // hours 03, 04, 05 for both
		for _, s := range []store.Subscription{a, b} {
			added := addN(t, db, 1, s)
			mustRecord(t, db, attempt(db, added[0], store.Delivered, 204, time.Time{}))
		}
		clk.Add(time.Hour)
	}
	// A cutoff inside 05:00 keeps that hour: it still holds events of the window.
	n, err := db.PurgeTimeline(h3.Add(2*time.Hour+30*time.Minute), 3)
	if err != nil || n != 3 {
		t.Fatalf("first batch: got %d, %v; want 3 (the limit)", n, err)
	}
	n, err = db.PurgeTimeline(h3.Add(2*time.Hour+30*time.Minute), 3)
	// The hour left, and each subscription's minute of 04:04 (the write at
	// 05:04:05 kept it: it ends within MinuteWindow); the minute of 05:04
	// overlaps the window of the clock's 06:04:05 and stays.
	if err != nil || n != 3 {
		t.Fatalf("second batch: got %d, %v; want 3 (the hour left and 2 minutes)", n, err)
	}
	for _, s := range []store.Subscription{a, b} {
		if n := minuteCount(t, db, s, h3.Add(2*time.Hour+59*time.Minute)); n != 1 {
			t.Errorf("got %d minute records of 05:00-05:59, want 1 (05:04)", n)
		}
	}
	for _, s := range []store.Subscription{a, b} {
		checkOutcomes(t, mustTimeline(t, db, s), store.Outcomes{Start: h3.Add(2 * time.Hour), Succeeded: 1})
	}

	// The minutes of 04:00-04:59 are gone.
	for _, s := range []store.Subscription{a, b} {
		if n := minuteCount(t, db, s, h3.Add(time.Hour+59*time.Minute)); n != 0 {
			t.Errorf("got %d minute records of 04:00-04:59, want 0", n)
		}
	}
}

func testTimelineMinutes(t *testing.T, open Opener) {
	db, clk := openEvents(t, open) // 03:04:05
	s := addEvSub(t, db, uuid.New(), "s")
	idle := addEvSub(t, db, s.CustomerID, "idle")
	m4 := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	one := func(sub store.Subscription, o store.Outcome) {
		t.Helper()
		added := addN(t, db, 1, sub)
		mustRecord(t, db, attempt(db, added[0], o, 200, time.Time{}))
	}
	one(s, store.Delivered)
	one(idle, store.Delivered)
	clk.Add(30 * time.Second)
	one(s, store.Failed)
	clk.Add(time.Minute) // 03:05:35
	one(s, store.Delivered)
	minutes, err := db.TimelineMinutes(s.CustomerID, s.ID, time.Time{}, db.Now())
	if err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, minutes, store.Outcomes{Start: m4, Succeeded: 1, Failed: 1}, store.Outcomes{Start: m4.Add(time.Minute), Succeeded: 1})
	checkOutcomes(t, mustTimeline(t, db, s), store.Outcomes{Start: m4.Add(-4 * time.Minute), Succeeded: 2, Failed: 1})

	// A write an hour later removes the subscription's minutes before the window.
	clk.Add(61 * time.Minute) // 04:06:35
	one(s, store.Delivered)
	minutes, err = db.TimelineMinutes(s.CustomerID, s.ID, time.Time{}, db.Now())
	if err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, minutes, store.Outcomes{Start: m4.Add(62 * time.Minute), Succeeded: 1})
	if n := minuteCount(t, db, s, m4.Add(30*time.Minute)); n != 0 {
		t.Errorf("got %d minute records of 03:04-03:34, want none", n)
	}
	// The janitor removes those of a subscription without a new outcome,
	// and leaves the recent ones and the hours of the retention window.
	if n := minuteCount(t, db, idle, m4.Add(30*time.Minute)); n != 1 {
		t.Fatalf("idle subscription: got %d minute records before the purge, want 1", n)
	}
	n, err := db.PurgeTimeline(db.Now().Add(-7*24*time.Hour), 100)
	if err != nil || n != 1 {
		t.Fatalf("purge: got %d, %v; want the idle subscription's old minute", n, err)
	}
	if n := minuteCount(t, db, idle, m4.Add(30*time.Minute)); n != 0 {
		t.Errorf("idle subscription: got %d minute records, want 0", n)
	}
	if n := minuteCount(t, db, s, db.Now()); n != 1 {
		t.Errorf("got %d minute records after the purge, want the recent one", n)
	}
	checkOutcomes(t, mustTimeline(t, db, idle), store.Outcomes{Start: m4.Add(-4 * time.Minute), Succeeded: 1})
}

// minuteCount counts s's minute records in the MinuteWindow up to to.
func minuteCount(t *testing.T, db store.Store, s store.Subscription, to time.Time) int {
	t.Helper()
	got, err := db.TimelineMinutes(s.CustomerID, s.ID, time.Time{}, to)
	if err != nil {
		t.Fatalf("minutes: %v", err)
	}
	return len(got)
}
