package httpapi

import (
	"net/http"
	"slices"

	"hookd/store"
	"hookd/wire"
)

// clusterViewer is a store that several hookd nodes share (PostgreSQL): it
// knows the live nodes, and which due events no node has claimed.
type clusterViewer interface {
	ClusterStatus() (store.ClusterStatus, error)
}

// cluster shows the live nodes and the event waiting longest past its due
// time. On a store of one node (the embedded one) the node is this process
// (Options.Node).
func (s *Server) cluster(w http.ResponseWriter, r *http.Request) error {
	var st store.ClusterStatus
	var err error
	if cv, ok := s.DB.(clusterViewer); ok {
		st, err = cv.ClusterStatus()
	} else {
		st, err = s.oneNodeStatus()
	}
	if err != nil {
		return err
	}
	out := wire.Cluster{Nodes: make([]wire.Node, 0, len(st.Nodes))}
	for _, n := range st.Nodes {
		out.Nodes = append(out.Nodes, wire.Node{ID: n.ID, Name: n.Name, StartedAt: eventTime(n.StartedAt), LastSeen: eventTime(n.SeenAt), Claims: n.Claims})
	}
	if d := st.OldestDue; d != nil {
		out.OldestDue = &wire.DueEvent{SubscriptionID: d.Subscription, EventID: d.Event, DueAt: eventTime(d.DueAt)}
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, out)
}

// oneNodeStatus is the cluster of a store of one node: this process, seen
// now, and the store's oldest due event.
func (s *Server) oneNodeStatus() (store.ClusterStatus, error) {
	now := s.DB.Now()
	self := s.Node
	self.SeenAt = now
	st := store.ClusterStatus{Nodes: []store.Node{self}}
	due, err := s.DB.DueSubscriptions()
	if err != nil {
		return st, err
	}
	// The subscriptions in order of their earliest due time: the first
	// whose head is still due when read names the oldest.
	heads := make([]store.DueRef, 0, len(due))
	for id, at := range due {
		if !at.After(now) {
			heads = append(heads, store.DueRef{Subscription: id, DueAt: at})
		}
	}
	slices.SortFunc(heads, func(a, b store.DueRef) int { return a.DueAt.Compare(b.DueAt) })
	for _, h := range heads {
		events, _, err := s.DB.DueEvents(h.Subscription, now, 1, nil)
		if err != nil {
			return st, err
		}
		if len(events) == 1 {
			h.Event, h.DueAt = events[0].ID, events[0].DueAt
			st.OldestDue = &h
			break
		}
	}
	return st, nil
}
