package wire

import "github.com/google/uuid"

// Cluster is the admin API's view of the hookd nodes sharing a database:
// the live nodes and the unclaimed event waiting longest past its due
// time.
type Cluster struct {
	Nodes []Node `json:"nodes"`
	// OldestDue is null when no unclaimed event is due.
	OldestDue *DueEvent `json:"oldestDue"`
}

// Node is one live hookd node.
type Node struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	StartedAt string    `json:"startedAt"`
	LastSeen  string    `json:"lastSeen"`
	// Claims counts the subscriptions whose deliveries the node holds
	// (their lanes; 0 on the embedded store).
	Claims int `json:"claims"`
}

// DueEvent names an event due for an attempt.
type DueEvent struct {
	SubscriptionID uuid.UUID `json:"subscriptionId"`
	EventID        uuid.UUID `json:"eventId"`
	DueAt          string    `json:"dueAt"`
}
