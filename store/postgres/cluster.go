package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"

	"hookd/store"
)

// DefaultHeartbeat is how often a node writes that it is alive, unless
// MemberOptions.Heartbeat says otherwise.
const DefaultHeartbeat = 2 * time.Second

// NodeLease is how long a node counts as live after its last heartbeat: a
// few missed beats (a pause, a slow database) do not drop it, a dead node
// is dropped within seconds.
const NodeLease = 10 * time.Second

// forgetNodesAfter is how long the row of a node gone without leaving
// (killed) stays for the record before a heartbeat deletes it.
const forgetNodesAfter = 24 * time.Hour

// listenRetry is the pause before the listener connects again after it
// lost its connection.
const listenRetry = time.Second

// leaveTimeout bounds the deletion of a node's row when it leaves.
const leaveTimeout = 5 * time.Second

// The notification channels of migration 2's triggers.
const (
	channelDue           = "hookd_due"
	channelSubscriptions = "hookd_subscriptions"
	channelKeys          = "hookd_keys"
)

// MemberOptions configure Join.
type MemberOptions struct {
	// ID is the node's id; a random one when zero. A process draws a new
	// one at each start.
	ID uuid.UUID
	// Name is the node's name as the admin API shows it.
	Name string
	// Heartbeat is the interval of the node's heartbeat; DefaultHeartbeat
	// when zero. It must be shorter than NodeLease.
	Heartbeat time.Duration
	// Due is called with the subscriptions that have new due events,
	// recorded by any node (this one included), from the listener's
	// goroutine: it must not block for long.
	Due func(subs []uuid.UUID)
	// KeysChanged is called with a customer whose signing keys changed,
	// through any node.
	KeysChanged func(customer uuid.UUID)
	// LiveNodes is called with the number of live nodes at Join and
	// whenever a heartbeat finds it changed.
	LiveNodes func(n int)
	// Claims, when not nil, are the node's lane claims: each heartbeat
	// hands lanes over or takes them towards the node's share (see
	// Claims), and the lanes it takes are woken through Due.
	Claims *Claims
	// OnError receives the errors of the heartbeat and the listener,
	// which go on trying; nil drops them.
	OnError func(error)
}

// Member is this process's membership of the nodes sharing the database:
// its row in the nodes table, kept alive by a heartbeat, and a listener
// of the other nodes' notifications. Join starts both goroutines; Close
// stops them and deletes the row.
type Member struct {
	db     *DB
	id     uuid.UUID
	o      MemberOptions
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	live   int // the last count given to LiveNodes; the heartbeat's alone
}

// Join records this process as a node named o.Name under the id o.ID,
// and starts its heartbeat and its listener. Notifications are handled
// once the listener is connected; SubscriptionsVersion moves with every
// change of subscriptions through any node, so that the caches of every
// node follow.
func (db *DB) Join(ctx context.Context, o MemberOptions) (*Member, error) {
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Heartbeat >= NodeLease {
		return nil, fmt.Errorf("store: a node's heartbeat must be shorter than its lease (%v)", NodeLease)
	}
	if o.ID == uuid.Nil {
		o.ID = uuid.New()
	}
	m := &Member{db: db, id: o.ID, o: o}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO nodes (id, name, started_at, seen_at) VALUES ($1, $2, now(), now())`, m.id, o.Name)
		return err
	})
	if err != nil {
		return nil, err
	}
	ids, err := db.liveIDs()
	if err != nil {
		m.leave()
		return nil, err
	}
	m.live = len(ids)
	if o.LiveNodes != nil {
		o.LiveNodes(m.live)
	}
	ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(2)
	go m.heartbeat(ctx)
	go m.listen(ctx)
	return m, nil
}

// ID is the node's id.
func (m *Member) ID() uuid.UUID { return m.id }

// Close stops the heartbeat and the listener, waits for them to exit and
// deletes the node's row, so that the others count one node less at once.
func (m *Member) Close() error {
	var err error
	m.once.Do(func() {
		m.cancel()
		m.wg.Wait()
		err = m.leave()
	})
	return err
}

func (m *Member) leave() error {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	_, err := m.db.pool.Exec(ctx, `DELETE FROM nodes WHERE id = $1`, m.id)
	return mapErr(err)
}

func (m *Member) fail(err error) {
	if m.o.OnError != nil && err != nil {
		m.o.OnError(err)
	}
}

// heartbeat writes seen_at every Heartbeat until ctx ends; it also deletes
// the rows of nodes long gone and reports a change of the live count.
func (m *Member) heartbeat(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.o.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.beat(); err != nil {
			m.fail(err)
		}
	}
}

// beat is one heartbeat.
func (m *Member) beat() error {
	err := m.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		// The row is written again if it was deleted (the node was away
		// for longer than forgetNodesAfter).
		if _, err := tx.Exec(ctx, `INSERT INTO nodes (id, name, started_at, seen_at) VALUES ($1, $2, now(), now())
ON CONFLICT (id) DO UPDATE SET seen_at = now()`, m.id, m.o.Name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM nodes WHERE seen_at < now() - $1::interval`, forgetNodesAfter)
		return err
	})
	if err != nil {
		return err
	}
	ids, err := m.db.liveIDs()
	if err != nil {
		return err
	}
	if n := len(ids); n != m.live {
		m.live = n
		if m.o.LiveNodes != nil {
			m.o.LiveNodes(n)
		}
	}
	if m.o.Claims == nil {
		return nil
	}
	woken, err := m.o.Claims.renew(ids)
	if len(woken) > 0 && m.o.Due != nil {
		m.o.Due(woken)
	}
	return err
}

// liveIDs returns the ids of the nodes seen within NodeLease.
func (db *DB) liveIDs() ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM nodes WHERE seen_at >= now() - $1::interval`, NodeLease)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	return ids, err
}

// listen handles the notifications of the other nodes until ctx ends, on a
// connection of its own that it opens again when it is lost.
func (m *Member) listen(ctx context.Context) {
	defer m.wg.Done()
	// pgxlisten (by pgx's author) keeps the LISTEN connection: it
	// connects again after a loss and then calls the backlog handlers, which
	// is where the notifications missed meanwhile are made up for.
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, m.db.pool.Config().ConnConfig.Copy())
		},
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				m.fail(mapErr(err))
			}
		},
		ReconnectDelay: listenRetry,
	}
	l.Handle(channelDue, pgxlisten.HandlerFunc(func(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
		subs, err := parseIDs(n.Payload)
		if len(subs) > 0 && m.o.Due != nil {
			m.o.Due(subs)
		}
		return err
	}))
	l.Handle(channelSubscriptions, resyncHandler{
		notify: func(*pgconn.Notification) error { m.db.subsVersion.Add(1); return nil },
		// Changes made while the listener was away went unheard: the
		// caches start afresh. (Missed due events are found by the
		// dispatcher's rescan, missed key changes by its key refresh.)
		resync: func() { m.db.subsVersion.Add(1) },
	})
	l.Handle(channelKeys, pgxlisten.HandlerFunc(func(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
		id, err := uuid.Parse(n.Payload)
		if err != nil {
			return err
		}
		if m.o.KeysChanged != nil {
			m.o.KeysChanged(id)
		}
		return nil
	}))
	_ = l.Listen(ctx) // returns when ctx ends
}

// resyncHandler handles one channel's notifications and, after each
// (re)connection, what was missed.
type resyncHandler struct {
	notify func(*pgconn.Notification) error
	resync func()
}

func (h resyncHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	return h.notify(n)
}

func (h resyncHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.resync()
	return nil
}

// parseIDs parses a comma-separated list of UUIDs; it returns those it
// could parse and the error of the first it could not.
func parseIDs(s string) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	var first error
	for part := range strings.SplitSeq(s, ",") {
		id, err := uuid.Parse(part)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		ids = append(ids, id)
	}
	return ids, first
}

// LiveNodes returns the nodes seen within NodeLease, oldest first.
func (db *DB) LiveNodes() ([]store.Node, error) {
	var nodes []store.Node
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		nodes, err = liveNodes(ctx, tx)
		return err
	})
	return nodes, err
}

func liveNodes(ctx context.Context, tx pgx.Tx) ([]store.Node, error) {
	rows, err := tx.Query(ctx, `SELECT id, name, started_at, seen_at FROM nodes
WHERE seen_at >= now() - $1::interval ORDER BY started_at, id`, NodeLease)
	if err != nil {
		return nil, err
	}
	nodes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Node, error) {
		var n store.Node
		err := r.Scan(&n.ID, &n.Name, &n.StartedAt, &n.SeenAt)
		n.StartedAt, n.SeenAt = n.StartedAt.UTC(), n.SeenAt.UTC()
		return n, err
	})
	return nodes, err
}

// ClusterStatus returns the live nodes with the number of subscriptions
// whose lanes each holds (Claims) and the due event waiting longest past
// its due time, in one snapshot.
func (db *DB) ClusterStatus() (store.ClusterStatus, error) {
	now := db.Now()
	var st store.ClusterStatus
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if st.Nodes, err = liveNodes(ctx, tx); err != nil {
			return err
		}
		// The lanes each node holds.
		rows, err := tx.Query(ctx, `SELECT node_id, count(*) FROM lane_claims GROUP BY node_id`)
		if err != nil {
			return err
		}
		claims := map[uuid.UUID]int{}
		for rows.Next() {
			var node uuid.UUID
			var n int
			if err := rows.Scan(&node, &n); err != nil {
				rows.Close()
				return err
			}
			claims[node] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range st.Nodes {
			st.Nodes[i].Claims = claims[st.Nodes[i].ID]
		}
		// Each subscription's first due event, then the oldest of them:
		// a short read of the due index per subscription.
		var ref store.DueRef
		err = tx.QueryRow(ctx, `SELECT s.subscription_id, h.id, h.due_at FROM sub_stats s
CROSS JOIN LATERAL (SELECT id, due_at FROM events e
	WHERE e.subscription_id = s.subscription_id AND e.due_at IS NOT NULL
	ORDER BY e.due_at, e.seq LIMIT 1) h
WHERE h.due_at <= $1 AND NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.subscription_id = s.subscription_id)
ORDER BY h.due_at, s.subscription_id LIMIT 1`, now).Scan(&ref.Subscription, &ref.Event, &ref.DueAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return err
		}
		ref.DueAt = ref.DueAt.UTC()
		st.OldestDue = &ref
		return nil
	})
	if st.Nodes == nil {
		st.Nodes = []store.Node{}
	}
	return st, err
}

// TryLock takes the advisory lock named name on a connection of its own,
// unless another process holds it: then ok is false. unlock releases the
// lock and the connection; a connection lost meanwhile released the lock
// with it. Nodes use it for work that one node at a time does (the
// janitor).
func (db *DB) TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, false, mapErr(err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, name).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, false, mapErr(err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, name); err != nil {
			// Closing the connection releases its locks; the pool
			// drops a closed connection.
			conn.Conn().Close(ctx)
		}
		conn.Release()
	}, true, nil
}
