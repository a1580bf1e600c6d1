package bolt

import (
	"encoding/json"
	"errors"
	"fmt"
	"hookd/store"
	"testing"
	"time"

	"github.com/google/uuid"
)

// newTestSub returns a subscription of customer created at at.
func newTestSub(customer uuid.UUID, title string, at time.Time) store.Subscription {
	return store.Subscription{
		ID: uuid.New(), CustomerID: customer, Title: title, Endpoint: "https://example.com/hook",
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: at, UpdatedAt: at,
	}
}

func TestSubscriptionCreateGetList(t *testing.T) {
	db := openTestDB(t)
	cust, other := uuid.New(), uuid.New()
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	v0 := db.SubscriptionsVersion()
	// Created in an order that their ids do not follow; the list follows
	// creation time, including subscriptions created within one second.
	var want []uuid.UUID
	for i := 0; i < 5; i++ {
		s := newTestSub(cust, fmt.Sprintf("sub %d", i), base.Add(time.Duration(i)*time.Millisecond))
		if err := db.CreateSubscription(s, 0); err != nil {
			t.Fatal(err)
		}
		want = append(want, s.ID)
	}
	if err := db.CreateSubscription(newTestSub(other, "sub 0", base), 0); err != nil {
		t.Fatalf("the same title for another customer: got %v, want nil", err)
	}
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
		if s.ID != want[i] {
			t.Errorf("list[%d]: got %s, want %s (creation order)", i, s.ID, want[i])
		}
	}
	got, err := db.Subscription(cust, want[2])
	if err != nil || got.Title != "sub 2" || got.Endpoint != "https://example.com/hook" || !got.Enabled {
		t.Errorf("Subscription: got %+v, %v; want sub 2", got, err)
	}
	if _, err := db.Subscription(other, want[2]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another customer's subscription: got %v, want ErrNotFound", err)
	}
	if _, err := db.Subscription(cust, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown subscription: got %v, want ErrNotFound", err)
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

func TestSubscriptionTitleUniqueAndLimit(t *testing.T) {
	db := openTestDB(t)
	cust := uuid.New()
	now := time.Now().UTC()
	a := newTestSub(cust, "alpha", now)
	if err := db.CreateSubscription(a, 2); err != nil {
		t.Fatal(err)
	}
	dup := newTestSub(cust, "alpha", now)
	err := db.CreateSubscription(dup, 2)
	var ce *store.ConflictError
	if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("duplicate title: got %v, want a ConflictError", err)
	}
	if _, err := db.Subscription(cust, dup.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused duplicate: got %v, want it not stored", err)
	}
	b := newTestSub(cust, "beta", now)
	if err := db.CreateSubscription(b, 2); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSubscription(newTestSub(cust, "gamma", now), 2); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("third of limit 2: got %v, want ErrLimit", err)
	}
	// Deleting one frees both a place and its title.
	if err := db.DeleteSubscription(cust, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSubscription(newTestSub(cust, "alpha", now), 2); err != nil {
		t.Errorf("create after delete: got %v, want nil", err)
	}
}

func TestUpdateSubscription(t *testing.T) {
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	db, err := Open(t.TempDir(), Options{NoSync: true, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cust := uuid.New()
	a, b := newTestSub(cust, "alpha", clock), newTestSub(cust, "beta", clock)
	a.Filter = json.RawMessage(`{"type":"object"}`)
	for _, s := range []store.Subscription{a, b} {
		if err := db.CreateSubscription(s, 0); err != nil {
			t.Fatal(err)
		}
	}

	clock = clock.Add(time.Minute)
	v := db.SubscriptionsVersion()
	before, after, err := db.UpdateSubscription(cust, a.ID, func(s *store.Subscription) error {
		s.Title = "alpha 2"
		s.Enabled = false
		s.Filter = nil
		s.Events = append(s.Events, "entityDeleted")
		s.ID, s.CustomerID, s.CreatedAt = uuid.New(), uuid.New(), time.Time{} // ignored
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if before.Title != "alpha" || !before.Enabled || len(before.Events) != 1 || string(before.Filter) != `{"type":"object"}` {
		t.Errorf("got before %+v, want the stored subscription unchanged", before)
	}
	if after.Title != "alpha 2" || after.Enabled || after.Filter != nil || len(after.Events) != 2 {
		t.Errorf("got after %+v, want the change applied", after)
	}
	if after.ID != a.ID || after.CustomerID != cust || !after.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("got id %s customer %s createdAt %v, want them kept", after.ID, after.CustomerID, after.CreatedAt)
	}
	if !after.UpdatedAt.Equal(clock) {
		t.Errorf("got updatedAt %v, want %v", after.UpdatedAt, clock)
	}
	if db.SubscriptionsVersion() == v {
		t.Error("got the same SubscriptionsVersion after an update, want it changed")
	}

	// The old title is free, the new one taken.
	if err := db.CreateSubscription(newTestSub(cust, "alpha", clock), 0); err != nil {
		t.Errorf("create with the freed title: got %v, want nil", err)
	}
	if err := db.CreateSubscription(newTestSub(cust, "alpha 2", clock), 0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("create with the new title: got %v, want ErrConflict", err)
	}
	// Renaming onto another's title is refused and changes nothing.
	_, _, err = db.UpdateSubscription(cust, b.ID, func(s *store.Subscription) error { s.Title = "alpha 2"; s.Enabled = false; return nil })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("rename onto a taken title: got %v, want ErrConflict", err)
	}
	if got, _ := db.Subscription(cust, b.ID); got.Title != "beta" || !got.Enabled {
		t.Errorf("after refused rename: got %+v, want beta unchanged", got)
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
	if _, _, err := db.UpdateSubscription(uuid.New(), b.ID, func(s *store.Subscription) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update through another customer: got %v, want ErrNotFound", err)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

func TestDeleteSubscriptionLeavesTombstone(t *testing.T) {
	db := openTestDB(t)
	cust := uuid.New()
	s := newTestSub(cust, "doomed", time.Now())
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSubscription(uuid.New(), s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete through another customer: got %v, want ErrNotFound", err)
	}
	if err := db.DeleteSubscription(cust, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Subscription(cust, s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get after delete: got %v, want ErrNotFound", err)
	}
	if list, _ := db.Subscriptions(cust); len(list) != 0 {
		t.Errorf("got %d listed after delete, want 0", len(list))
	}
	stones, err := db.Tombstones()
	if err != nil || len(stones) != 1 || stones[0] != s.ID {
		t.Errorf("got tombstones %v, %v; want [%s]", stones, err, s.ID)
	}
	if err := db.DeleteSubscription(cust, s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: got %v, want ErrNotFound", err)
	}
}

// TestSubscriptionFilterKeptByteForByte: a filter holding <, > and & reads
// back as it was stored, not with those characters escaped.
func TestSubscriptionFilterKeptByteForByte(t *testing.T) {
	db := openTestDB(t)
	s := newTestSub(uuid.New(), "filtered", time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	s.Filter = json.RawMessage(`{"pattern":"^a&b<c>$","title":"\u0026 as written"}`)
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	got, err := db.Subscription(s.CustomerID, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Filter) != string(s.Filter) {
		t.Errorf("got filter %s, want %s", got.Filter, s.Filter)
	}
}
