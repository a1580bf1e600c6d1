package bolt

import (
	"hookd/store"
	"time"

	"github.com/google/uuid"
)

// The behaviour of subscriptions is tested by the store's suite
// (store/storetest/subscriptions.go).

// newTestSub returns a subscription of customer created at at.
func newTestSub(customer uuid.UUID, title string, at time.Time) store.Subscription {
	return store.Subscription{
		ID: uuid.New(), CustomerID: customer, Title: title, Endpoint: "https://example.com/hook",
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: at, UpdatedAt: at,
	}
}
