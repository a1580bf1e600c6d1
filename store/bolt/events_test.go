package bolt

import (
	"fmt"
	"hookd/store"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// evClock is a settable clock for event tests.
type evClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *evClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *evClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// openEventsDB opens a store (checked at cleanup) whose clock is returned.
func openEventsDB(t *testing.T) (*DB, *evClock) {
	t.Helper()
	db := openTestDB(t)
	clk := &evClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	db.now = clk.Now
	return db, clk
}

// addEvSub creates an enabled subscription of customer to every event type.
func addEvSub(t *testing.T, db *DB, customer uuid.UUID, title string) store.Subscription {
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

// addN records n events for each of subs and returns the added records.
func addN(t *testing.T, db *DB, n int, subs ...store.Subscription) []store.Added {
	t.Helper()
	var events []store.NewEvent
	var ds []store.Delivery
	for i := range n {
		events = append(events, store.NewEvent{Type: "entityCreated", Txn: uuid.NewString(), Toe: int64(1000 + i), Payload: []byte(fmt.Sprintf(`{"sub":"u%d"}`, i))})
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
