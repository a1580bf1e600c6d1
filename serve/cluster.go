package serve

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/store/postgres"
)

// janitorLockName is the advisory lock that makes the janitor run on one
// node at a time.
const janitorLockName = "hookd janitor"

// clusterStore is a store that several hookd processes share (PostgreSQL):
// it records the nodes, tells each of what the others wrote, and lends a
// lock to the work one node at a time does. The embedded store is one node
// and has none of it.
type clusterStore interface {
	Join(ctx context.Context, o postgres.MemberOptions) (*postgres.Member, error)
	TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error)
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

// janitorLock is the janitor's JanitorOptions.Exclusive: on a shared
// store, one node's janitor runs at a time; nil on a store of one node.
func (m *Main) janitorLock() func(ctx context.Context) (func(), bool, error) {
	cs, ok := m.db.(clusterStore)
	if !ok {
		return nil
	}
	return func(ctx context.Context) (func(), bool, error) { return cs.TryLock(ctx, janitorLockName) }
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
	member, err := cs.Join(ctx, postgres.MemberOptions{
		ID:          m.node.ID,
		Name:        m.node.Name,
		Due:         func(subs []uuid.UUID) { m.dispatcher.Notify(subs...) },
		KeysChanged: m.dispatcher.ForgetKeys,
		LiveNodes: func(n int) {
			m.api.SetClientShare(n)
			log.Info().Int("liveNodes", n).Msg("the per-client rate is shared between the live nodes")
		},
		OnError: func(err error) { log.Warn().Err(err).Msg("cluster heartbeat or notifications") },
	})
	if err != nil {
		return err
	}
	m.onClose(member.Close)
	log.Info().Str("nodeId", member.ID().String()).Str("nodeName", m.node.Name).Msg("joined the nodes sharing the store")
	return nil
}
