package store

import (
	"time"

	"github.com/google/uuid"
)

// Node is one hookd process sharing a store with others (the PostgreSQL
// backend): its id is drawn at each start, its name is --node-name.
type Node struct {
	ID        uuid.UUID
	Name      string
	StartedAt time.Time
	// SeenAt is the node's last heartbeat; a node is live while it is
	// within the lease.
	SeenAt time.Time
	// Claims counts the subscriptions whose deliveries the node holds.
	Claims int
}

// ClusterStatus is what the admin API shows of the nodes sharing a store.
type ClusterStatus struct {
	// Nodes are the live nodes, oldest first.
	Nodes []Node
	// OldestDue is the event waiting longest past its due time, nil when
	// none is due.
	OldestDue *DueRef
}

// DueRef names an event due for an attempt.
type DueRef struct {
	Subscription uuid.UUID
	Event        uuid.UUID // the event's public id
	DueAt        time.Time
}
