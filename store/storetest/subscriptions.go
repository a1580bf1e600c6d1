package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

func init() {
	register(map[string]func(t *testing.T, open Opener){
		"SubscriptionCreateGetList":                  testSubscriptionCreateGetList,
		"SubscriptionTitleUniqueAndLimit":            testSubscriptionTitleUniqueAndLimit,
		"SubscriptionUpdate":                         testUpdateSubscription,
		"SubscriptionDeleteLeavesTombstone":          testDeleteSubscriptionLeavesTombstone,
		"SubscriptionFilterKeptByteForByte":          testSubscriptionFilterKeptByteForByte,
		"SubscriptionDisable":                        testDisableSubscription,
		"SubscriptionDisableWhileFailing":            testDisableSubscriptionWhileFailing,
		"SubscriptionReenableClearsReasonAndFailing": testReenableClearsReasonAndFailing,
		"SubscriptionCreatesAtOnce":                  testSubscriptionCreatesAtOnce,
	})
}

// newSub returns an enabled subscription of customer created at at.
func newSub(customer uuid.UUID, title string, at time.Time) store.Subscription {
	return store.Subscription{
		ID: uuid.New(), CustomerID: customer, Title: title, Endpoint: "https://example.com/hook",
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: at, UpdatedAt: at,
	}
}

func mustCreateSub(t *testing.T, db store.Store, s store.Subscription) store.Subscription {
	t.Helper()
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatalf("create subscription %q: %v", s.Title, err)
	}
	return s
}

func testSubscriptionCreateGetList(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust, other := uuid.New(), uuid.New()
	base := clock.Now()
	v0 := db.SubscriptionsVersion()
	// Created in an order that their ids do not follow; the list follows
	// creation time, including subscriptions created within one second.
	var want []store.Subscription
	for i := 0; i < 5; i++ {
		s := newSub(cust, fmt.Sprintf("sub %d", i), base.Add(time.Duration(i)*time.Millisecond))
		s.SigningAlg = store.AlgES256
		want = append(want, mustCreateSub(t, db, s))
	}
	mustCreateSub(t, db, newSub(other, "sub 0", base))
	if db.SubscriptionsVersion() == v0 {
		t.Error("got the same SubscriptionsVersion after creates, want it changed")
	}
	list, err := db.Subscriptions(cust)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(want) {
		t.Fatalf("got %d subscriptions, want %d", len(list), len(want))
	}
	for i, s := range list {
		if s.ID != want[i].ID {
			t.Errorf("list[%d]: got %s, want %s (creation order)", i, s.ID, want[i].ID)
		}
	}
	got, err := db.Subscription(cust, want[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	checkSub(t, got, want[2])
	byID, err := db.SubscriptionByID(want[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	checkSub(t, byID, want[2])
	if _, err := db.Subscription(other, want[2].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another customer's subscription: got %v, want ErrNotFound", err)
	}
	if _, err := db.Subscription(cust, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown subscription: got %v, want ErrNotFound", err)
	}
	if _, err := db.SubscriptionByID(uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SubscriptionByID of an unknown id: got %v, want ErrNotFound", err)
	}
	empty, err := db.Subscriptions(uuid.New())
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("list of unknown customer: got %#v, %v; want an empty non-nil list", empty, err)
	}
	all, err := db.AllSubscriptions()
	if err != nil || len(all) != 6 {
		t.Errorf("AllSubscriptions: got %d, %v; want 6", len(all), err)
	}
}

// checkSub compares every member of a subscription read back with the one
// stored.
func checkSub(t *testing.T, got, want store.Subscription) {
	t.Helper()
	same := got.ID == want.ID && got.CustomerID == want.CustomerID && got.Title == want.Title &&
		got.Endpoint == want.Endpoint && fmt.Sprint(got.Events) == fmt.Sprint(want.Events) &&
		got.Enabled == want.Enabled && string(got.Filter) == string(want.Filter) &&
		got.CreatedAt.Equal(want.CreatedAt) && got.UpdatedAt.Equal(want.UpdatedAt) &&
		got.DisabledAt.Equal(want.DisabledAt) && got.DisabledReason == want.DisabledReason &&
		got.SigningAlg == want.SigningAlg
	if !same {
		t.Errorf("got subscription %+v, want %+v", got, want)
	}
}

func testSubscriptionTitleUniqueAndLimit(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	now := clock.Now()
	a := newSub(cust, "alpha", now)
	if err := db.CreateSubscription(a, 2); err != nil {
		t.Fatal(err)
	}
	v := db.SubscriptionsVersion()
	dup := newSub(cust, "alpha", now)
	err := db.CreateSubscription(dup, 2)
	var ce *store.ConflictError
	if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) || ce.Reason != `a subscription titled "alpha" already exists` {
		t.Fatalf("duplicate title: got %v, want a ConflictError naming the title", err)
	}
	if _, err := db.Subscription(cust, dup.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused duplicate: got %v, want it not stored", err)
	}
	if db.SubscriptionsVersion() != v {
		t.Error("a refused create changed SubscriptionsVersion, want it kept")
	}
	b := newSub(cust, "beta", now)
	if err := db.CreateSubscription(b, 2); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSubscription(newSub(cust, "gamma", now), 2); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("third of limit 2: got %v, want ErrLimit", err)
	}
	// A taken title is told before the limit.
	if err := db.CreateSubscription(newSub(cust, "beta", now), 2); !errors.Is(err, store.ErrConflict) {
		t.Errorf("taken title at the limit: got %v, want ErrConflict", err)
	}
	// The limit is per customer; zero is no limit.
	if err := db.CreateSubscription(newSub(uuid.New(), "gamma", now), 2); err != nil {
		t.Errorf("another customer's first: got %v, want nil", err)
	}
	if list, _ := db.Subscriptions(cust); len(list) != 2 {
		t.Errorf("got %d subscriptions after refusals, want 2", len(list))
	}
	// Deleting one frees both a place and its title.
	if err := db.DeleteSubscription(cust, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSubscription(newSub(cust, "alpha", now), 2); err != nil {
		t.Errorf("create after delete: got %v, want nil", err)
	}
	if err := db.CreateSubscription(newSub(cust, "delta", now), 0); err != nil {
		t.Errorf("create without a limit: got %v, want nil", err)
	}
}

func testUpdateSubscription(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	a, b := newSub(cust, "alpha", clock.Now()), newSub(cust, "beta", clock.Now())
	a.Filter = json.RawMessage(`{"type":"object"}`)
	mustCreateSub(t, db, a)
	mustCreateSub(t, db, b)

	clock.Add(time.Minute)
	v := db.SubscriptionsVersion()
	before, after, err := db.UpdateSubscription(cust, a.ID, func(s *store.Subscription) error {
		s.Title = "alpha 2"
		s.Enabled = false
		s.Filter = nil
		s.Events = append(s.Events, "entityDeleted")
		s.SigningAlg = store.AlgEdDSA
		s.ID, s.CustomerID, s.CreatedAt = uuid.New(), uuid.New(), time.Time{} // ignored
		s.DisabledReason = "ignored"                                          // kept by the store
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if before.Title != "alpha" || !before.Enabled || len(before.Events) != 1 || string(before.Filter) != `{"type":"object"}` {
		t.Errorf("got before %+v, want the stored subscription unchanged", before)
	}
	if after.Title != "alpha 2" || after.Enabled || after.Filter != nil || len(after.Events) != 2 || after.SigningAlg != store.AlgEdDSA {
		t.Errorf("got after %+v, want the change applied", after)
	}
	if after.ID != a.ID || after.CustomerID != cust || !after.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("got id %s customer %s createdAt %v, want them kept", after.ID, after.CustomerID, after.CreatedAt)
	}
	if !after.UpdatedAt.Equal(clock.Now()) || !after.DisabledAt.Equal(clock.Now()) || after.DisabledReason != "" {
		t.Errorf("got updatedAt %v disabledAt %v reason %q, want now, now and none", after.UpdatedAt, after.DisabledAt, after.DisabledReason)
	}
	if db.SubscriptionsVersion() == v {
		t.Error("got the same SubscriptionsVersion after an update, want it changed")
	}
	stored, err := db.Subscription(cust, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkSub(t, stored, after)

	// The old title is free, the new one taken.
	if err := db.CreateSubscription(newSub(cust, "alpha", clock.Now()), 0); err != nil {
		t.Errorf("create with the freed title: got %v, want nil", err)
	}
	if err := db.CreateSubscription(newSub(cust, "alpha 2", clock.Now()), 0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("create with the new title: got %v, want ErrConflict", err)
	}
	// Renaming onto another's title is refused and changes nothing.
	v = db.SubscriptionsVersion()
	_, _, err = db.UpdateSubscription(cust, b.ID, func(s *store.Subscription) error { s.Title = "alpha 2"; s.Enabled = false; return nil })
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Reason != `a subscription titled "alpha 2" already exists` {
		t.Errorf("rename onto a taken title: got %v, want a ConflictError naming it", err)
	}
	if got, _ := db.Subscription(cust, b.ID); got.Title != "beta" || !got.Enabled {
		t.Errorf("after refused rename: got %+v, want beta unchanged", got)
	}
	if db.SubscriptionsVersion() != v {
		t.Error("a refused update changed SubscriptionsVersion, want it kept")
	}
	// Keeping one's own title is no conflict.
	if _, _, err := db.UpdateSubscription(cust, b.ID, func(s *store.Subscription) error { return nil }); err != nil {
		t.Errorf("update keeping the title: got %v, want nil", err)
	}
	// An error of the change function aborts the update.
	boom := errors.New("boom")
	if _, _, err := db.UpdateSubscription(cust, b.ID, func(s *store.Subscription) error { s.Title = "x"; return boom }); !errors.Is(err, boom) {
		t.Errorf("change error: got %v, want boom", err)
	}
	if got, _ := db.Subscription(cust, b.ID); got.Title != "beta" {
		t.Errorf("after a change error: got title %q, want beta", got.Title)
	}
	if _, _, err := db.UpdateSubscription(uuid.New(), b.ID, func(s *store.Subscription) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update through another customer: got %v, want ErrNotFound", err)
	}
}

func testDeleteSubscriptionLeavesTombstone(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	s := mustCreateSub(t, db, newSub(cust, "doomed", clock.Now()))
	if err := db.DeleteSubscription(uuid.New(), s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete through another customer: got %v, want ErrNotFound", err)
	}
	if _, err := db.Subscription(cust, s.ID); err != nil {
		t.Fatalf("after a refused delete: got %v, want the subscription kept", err)
	}
	v := db.SubscriptionsVersion()
	if err := db.DeleteSubscription(cust, s.ID); err != nil {
		t.Fatal(err)
	}
	if db.SubscriptionsVersion() == v {
		t.Error("got the same SubscriptionsVersion after a delete, want it changed")
	}
	if _, err := db.Subscription(cust, s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get after delete: got %v, want ErrNotFound", err)
	}
	if _, err := db.SubscriptionByID(s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SubscriptionByID after delete: got %v, want ErrNotFound", err)
	}
	if list, _ := db.Subscriptions(cust); len(list) != 0 {
		t.Errorf("got %d listed after delete, want 0", len(list))
	}
	if all, _ := db.AllSubscriptions(); len(all) != 0 {
		t.Errorf("got %d in AllSubscriptions after delete, want 0", len(all))
	}
	if _, err := db.FailingSince(s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FailingSince after delete: got %v, want ErrNotFound", err)
	}
	if _, _, err := db.DisableSubscription(s.ID, store.DisabledEndpointGone, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("disable after delete: got %v, want ErrNotFound", err)
	}
	stones, err := db.Tombstones()
	if err != nil || len(stones) != 1 || stones[0] != s.ID {
		t.Errorf("got tombstones %v, %v; want [%s]", stones, err, s.ID)
	}
	if err := db.DeleteSubscription(cust, s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: got %v, want ErrNotFound", err)
	}
}

// testSubscriptionFilterKeptByteForByte: a filter holding <, > and & reads
// back as it was stored, not with those characters escaped.
func testSubscriptionFilterKeptByteForByte(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	s := newSub(uuid.New(), "filtered", clock.Now())
	s.Filter = json.RawMessage(`{"pattern":"^a&b<c>$","title":"\u0026 as written","z":1,"a":[true,null]}`)
	mustCreateSub(t, db, s)
	got, err := db.Subscription(s.CustomerID, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Filter) != string(s.Filter) {
		t.Errorf("got filter %s, want %s", got.Filter, s.Filter)
	}
	_, _, err = db.UpdateSubscription(s.CustomerID, s.ID, func(s *store.Subscription) error {
		s.Filter = json.RawMessage(`{"b":"<&>","a":"\u003c"}`)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := db.SubscriptionByID(s.ID); string(got.Filter) != `{"b":"<&>","a":"\u003c"}` {
		t.Errorf("after an update: got filter %s, want it as written", got.Filter)
	}
}

// failSub records one event for s and a failed attempt at it started at
// at, so that s's run of failures starts then (or goes on).
func failSub(t *testing.T, db store.Store, s store.Subscription, at time.Time) store.Added {
	t.Helper()
	added, err := db.AddEvents([]store.NewEvent{{Type: "entityCreated", Toe: 1, Payload: []byte(`{"n":1}`)}},
		[]store.Delivery{{SubscriptionID: s.ID, Event: 0}})
	if err != nil || len(added) != 1 {
		t.Fatalf("add event: got %v, %v; want one", added, err)
	}
	err = db.RecordAttempts([]store.AttemptResult{{SubscriptionID: s.ID, Seq: store.EventSeq(added[0].ID), StartedAt: at,
		Outcome: store.Retry, RetryAt: at.Add(time.Hour), StatusCode: 503, Reason: "status", Code: store.ReasonStatus5xx}})
	if err != nil {
		t.Fatalf("record attempt: %v", err)
	}
	return added[0]
}

// testDisableSubscription: without failingBefore, DisableSubscription
// disables an enabled subscription for the reason, once.
func testDisableSubscription(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	s := mustCreateSub(t, db, newSub(cust, "gone", clock.Now()))
	if since, err := db.FailingSince(s.ID); err != nil || !since.IsZero() {
		t.Errorf("FailingSince of a new subscription: got %v, %v; want zero", since, err)
	}
	clock.Add(time.Minute)
	v := db.SubscriptionsVersion()
	got, done, err := db.DisableSubscription(s.ID, store.DisabledEndpointGone, time.Time{})
	if err != nil || !done {
		t.Fatalf("disable: got %v, %v; want done", done, err)
	}
	want := s
	want.Enabled, want.DisabledAt, want.DisabledReason, want.UpdatedAt = false, clock.Now(), store.DisabledEndpointGone, clock.Now()
	checkSub(t, got, want)
	stored, err := db.Subscription(cust, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkSub(t, stored, want)
	if db.SubscriptionsVersion() == v {
		t.Error("got the same SubscriptionsVersion after a disable, want it changed")
	}
	// Disabled already: nothing changes.
	clock.Add(time.Minute)
	v = db.SubscriptionsVersion()
	got, done, err = db.DisableSubscription(s.ID, store.DisabledEndpointFailing, time.Time{})
	if err != nil || done {
		t.Errorf("second disable: got %v, %v; want not done", done, err)
	}
	checkSub(t, got, want)
	if db.SubscriptionsVersion() != v {
		t.Error("a disable that did nothing changed SubscriptionsVersion")
	}
	if _, _, err := db.DisableSubscription(uuid.New(), store.DisabledEndpointGone, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("disable an unknown subscription: got %v, want ErrNotFound", err)
	}
	if _, err := db.FailingSince(uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FailingSince of an unknown subscription: got %v, want ErrNotFound", err)
	}
}

// testDisableSubscriptionWhileFailing: with failingBefore, only a run of
// failures that started at or before it disables; a success ends the run.
// The waiting events stay as they are: FailWaiting fails them afterwards.
func testDisableSubscriptionWhileFailing(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	s := mustCreateSub(t, db, newSub(cust, "failing", clock.Now()))
	start := clock.Now().Add(time.Second)
	first := failSub(t, db, s, start)
	clock.Add(time.Hour)
	failSub(t, db, s, clock.Now()) // the run goes on: it still started at start
	if since, err := db.FailingSince(s.ID); err != nil || !since.Equal(start) {
		t.Fatalf("FailingSince: got %v, %v; want %v", since, err, start)
	}
	if _, done, err := db.DisableSubscription(s.ID, store.DisabledEndpointFailing, start.Add(-time.Second)); err != nil || done {
		t.Fatalf("disable with failingBefore before the run: got %v, %v; want not done", done, err)
	}
	if got, _ := db.Subscription(cust, s.ID); !got.Enabled {
		t.Fatal("a disable that was not done disabled the subscription")
	}
	got, done, err := db.DisableSubscription(s.ID, store.DisabledEndpointFailing, start)
	if err != nil || !done || got.Enabled || got.DisabledReason != store.DisabledEndpointFailing || !got.DisabledAt.Equal(clock.Now()) {
		t.Fatalf("disable with failingBefore at the run's start: got %+v, %v, %v; want disabled now", got, done, err)
	}
	e, err := db.Event(cust, s.ID, first.ID)
	if err != nil || e.State != store.AwaitingRetry {
		t.Errorf("a waiting event after the disable: got %s, %v; want it still awaiting a retry", e.State, err)
	}

	// A success ends the run: a later check of the same run does nothing.
	other := mustCreateSub(t, db, newSub(cust, "recovered", clock.Now()))
	a := failSub(t, db, other, clock.Now())
	clock.Add(time.Minute)
	err = db.RecordAttempts([]store.AttemptResult{{SubscriptionID: other.ID, Seq: store.EventSeq(a.ID), StartedAt: clock.Now(),
		Outcome: store.Delivered, StatusCode: 204}})
	if err != nil {
		t.Fatal(err)
	}
	if since, err := db.FailingSince(other.ID); err != nil || !since.IsZero() {
		t.Errorf("FailingSince after a success: got %v, %v; want zero", since, err)
	}
	if _, done, err := db.DisableSubscription(other.ID, store.DisabledEndpointFailing, clock.Now()); err != nil || done {
		t.Errorf("disable after a success: got %v, %v; want not done", done, err)
	}
}

// testReenableClearsReasonAndFailing: enabling a subscription hookd
// disabled clears the reason, the time and the run of failures.
func testReenableClearsReasonAndFailing(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	s := mustCreateSub(t, db, newSub(cust, "back", clock.Now()))
	failSub(t, db, s, clock.Now())
	clock.Add(time.Hour)
	if _, done, err := db.DisableSubscription(s.ID, store.DisabledEndpointFailing, clock.Now()); err != nil || !done {
		t.Fatalf("disable: got %v, %v; want done", done, err)
	}
	// A change that keeps it disabled keeps the reason and the run.
	clock.Add(time.Minute)
	_, kept, err := db.UpdateSubscription(cust, s.ID, func(s *store.Subscription) error { s.Endpoint = "https://example.com/other"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if kept.Enabled || kept.DisabledReason != store.DisabledEndpointFailing || !kept.DisabledAt.Equal(clock.Now().Add(-time.Minute)) {
		t.Errorf("after a change while disabled: got %+v, want the reason and time kept", kept)
	}
	if since, _ := db.FailingSince(s.ID); since.IsZero() {
		t.Error("a change while disabled cleared the run of failures")
	}
	clock.Add(time.Minute)
	_, after, err := db.UpdateSubscription(cust, s.ID, func(s *store.Subscription) error { s.Enabled = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !after.Enabled || after.DisabledReason != "" || !after.DisabledAt.IsZero() {
		t.Errorf("after re-enable: got %+v, want enabled without reason or time", after)
	}
	stored, err := db.Subscription(cust, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkSub(t, stored, after)
	if since, err := db.FailingSince(s.ID); err != nil || !since.IsZero() {
		t.Errorf("FailingSince after re-enable: got %v, %v; want zero", since, err)
	}
	// The run was reset: a check of the old run does not disable it.
	if _, done, err := db.DisableSubscription(s.ID, store.DisabledEndpointFailing, clock.Now()); err != nil || done {
		t.Errorf("disable for the old run after re-enable: got %v, %v; want not done", done, err)
	}
}

// testSubscriptionCreatesAtOnce: creations at once keep the limit and the
// titles unique: of many at once, as many succeed as the limit allows, and
// of one title, one.
func testSubscriptionCreatesAtOnce(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	const n, limit = 8, 3
	cust := uuid.New()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.CreateSubscription(newSub(cust, fmt.Sprintf("s%d", i), clock.Now()), limit)
		}()
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, store.ErrLimit):
			t.Errorf("a creation at once: got %v, want nil or ErrLimit", err)
		}
	}
	if list, _ := db.Subscriptions(cust); created != limit || len(list) != limit {
		t.Errorf("got %d created, %d stored; want %d", created, len(list), limit)
	}

	other := uuid.New()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.CreateSubscription(newSub(other, "same", clock.Now()), 0)
		}()
	}
	wg.Wait()
	created = 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("a creation of one title at once: got %v, want nil or ErrConflict", err)
		}
	}
	if list, _ := db.Subscriptions(other); created != 1 || len(list) != 1 {
		t.Errorf("got %d created, %d stored of one title; want 1", created, len(list))
	}
}
