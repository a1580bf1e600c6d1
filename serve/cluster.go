package serve

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"hookd/jobs"
	"hookd/store"
	"hookd/store/postgres"
)

// clusterErrorBurst is how many errors of the heartbeat and the listener
// are logged per minute.
const clusterErrorBurst = 3

// janitorLockName is the advisory lock of the janitor, which one node at
// a time runs.
const janitorLockName = "hookd janitor"

// clusterStore is a store that several hookd processes share (PostgreSQL):
// it records the nodes, tells each of what the others wrote, lends a lock
// to the work one node at a time does, and hands out the subscriptions'
// lanes and the export jobs under claims. The embedded store is one node
// and has none of it.
type clusterStore interface {
	Join(ctx context.Context, o postgres.MemberOptions) (*postgres.Member, error)
	TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error)
	Claims(o postgres.ClaimOptions) *postgres.Claims
	ExportClaims(node uuid.UUID) *postgres.ExportClaims
}

// claimingStore is the store as a node's dispatcher sees it on a shared
// store: it reads the due events of the subscriptions whose lanes this
// node holds, and none of the others'.
type claimingStore struct {
	store.Store
	claims *postgres.Claims
}

// DueEvents returns sub's due events when this node holds its lane.
func (s claimingStore) DueEvents(sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) ([]store.Event, time.Time, error) {
	return s.claims.DueEvents(sub, now, limit, skip)
}

// RecordAttempts stores the outcomes and tells the claims, for which the
// events are then no longer out (a lane is handed over once none is).
func (s claimingStore) RecordAttempts(results []store.AttemptResult) error {
	if err := s.Store.RecordAttempts(results); err != nil {
		return err
	}
	s.claims.Recorded(results)
	return nil
}

// dispatchStore is the store the dispatcher works on: on a shared store,
// one that reads only the due events of the subscriptions whose lanes
// this node holds (m.claims), an event read counting as out for
// postgres.DefaultClaimLease or twice the attempt timeout if longer; one
// node delivers a subscription at a time, so --max-per-endpoint holds
// over all nodes.
func (m *Main) dispatchStore() store.Store {
	cs, ok := m.db.(clusterStore)
	if !ok {
		return m.db
	}
	m.claims = cs.Claims(postgres.ClaimOptions{
		Node:  m.node.ID,
		Lease: max(postgres.DefaultClaimLease, 2*m.cfg.AttemptTimeout),
	})
	return claimingStore{Store: m.db, claims: m.claims}
}

// newNode is this process as a node: a random id per start and its name,
// --node-name or else <hostname>:<listen port>.
func (m *Main) newNode() store.Node {
	name := m.cfg.NodeName
	if name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		_, port, _ := net.SplitHostPort(m.ln.Addr().String())
		name = net.JoinHostPort(host, port)
	}
	return store.Node{ID: uuid.New(), Name: name, StartedAt: time.Now().UTC()}
}

// metricLabels are the constant labels of every metric: on a shared store,
// node (the node's name), so that the nodes' figures stay apart when they
// are gathered; none on a store of one node, whose /metrics stays as it
// was.
func (m *Main) metricLabels() prometheus.Labels {
	if _, ok := m.db.(clusterStore); !ok {
		return nil
	}
	return prometheus.Labels{nodeLabel: m.node.Name}
}

// janitorLock is the janitor's JanitorOptions.Exclusive: on a shared
// store, one node's janitor runs at a time; nil on a store of one node.
func (m *Main) janitorLock() func(ctx context.Context) (func(), bool, error) {
	cs, ok := m.db.(clusterStore)
	if !ok {
		return nil
	}
	return func(ctx context.Context) (func(), bool, error) { return cs.TryLock(ctx, janitorLockName) }
}

// exportQueue is the exporter's ExporterOptions.Shared: on a shared store,
// every node's writers claim export jobs, in the fair order kept in the
// database for all nodes, and a job that a node which died left writing is
// taken over by another once its claim runs out; nil on a store of one
// node.
func (m *Main) exportQueue() jobs.SharedQueue {
	cs, ok := m.db.(clusterStore)
	if !ok {
		return nil
	}
	return cs.ExportClaims(m.node.ID)
}

// join records this process as a node of a shared store, with a heartbeat,
// and relays what the other nodes write: new due events wake this node's
// dispatcher (its periodic rescan finds those whose notification was
// lost), a key change makes it read the customer's keys again, and the
// per-client rate is divided between the live nodes. Nothing on a store of
// one node.
func (m *Main) join(ctx context.Context) error {
	cs, ok := m.db.(clusterStore)
	if !ok {
		return nil
	}
	log := m.log.With().Str("component", "cluster").Logger()
	errLog := log.Sample(&zerolog.BurstSampler{Burst: clusterErrorBurst, Period: time.Minute})
	// A count that stands still while events come in on other nodes is
	// a node that no longer listens (it then finds their events only by
	// its periodic rescan).
	dueHeard := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hookd_cluster_due_notifications_total",
		Help: "Notifications of new due events this node received from the database (LISTEN), sent for the intake of any node, this one included.",
	})
	if err := m.metrics.Register(dueHeard); err != nil {
		return err
	}
	member, err := cs.Join(ctx, postgres.MemberOptions{
		ID:   m.node.ID,
		Name: m.node.Name,
		Due: func(subs []uuid.UUID) {
			dueHeard.Inc()
			m.dispatcher.Notify(subs...)
		},
		KeysChanged: m.dispatcher.ForgetKeys,
		Claims:      m.claims,
		LiveNodes: func(n int) {
			m.api.SetClientShare(n)
			log.Info().Int("liveNodes", n).Msg("the per-client rate is shared between the live nodes")
		},
		// While the database is away every beat and every reconnection
		// fails: a few lines a minute say so.
		OnError: func(err error) { errLog.Warn().Err(err).Msg("cluster heartbeat or notifications") },
	})
	if err != nil {
		return err
	}
	m.onClose(member.Close)
	log.Info().Str("nodeId", member.ID().String()).Str("nodeName", m.node.Name).Msg("joined the nodes sharing the store")
	return nil
}
