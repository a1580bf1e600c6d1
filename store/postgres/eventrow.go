package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"hookd/store"
)

// stateCols are the columns of an event's row that its state changes read;
// eventCols add the payload and the history, for reads that return whole
// events.
const (
	stateCols = `subscription_id, seq, id, jti, type, txn, toe, endpoint, created_at, updated_at, state, attempts,
round_start, due_at, fail_seq, failed_at, reason, exported_at, jws, response`
	eventCols = stateCols + `, payload, history`
)

// historyRow is a store.HistoryEntry as the history column keeps it.
type historyRow struct {
	At         time.Time        `json:"at"`
	State      store.State      `json:"s"`
	Attempt    int              `json:"a,omitempty"`
	StatusCode int              `json:"c,omitempty"`
	Reason     string           `json:"r,omitempty"`
	Code       store.ReasonCode `json:"rc,omitempty"`
	Endpoint   string           `json:"e,omitempty"`
}

// responseRow is a store.Response as the response column keeps it.
type responseRow struct {
	StatusCode int            `json:"status"`
	Headers    []store.Header `json:"headers,omitempty"`
}

// historyJSON encodes history rows for the history column.
func historyJSON(h []store.HistoryEntry) ([]byte, error) {
	rows := make([]historyRow, len(h))
	for i, e := range h {
		rows[i] = historyRow(e)
	}
	return json.Marshal(rows)
}

// responseJSON encodes a response for the response column: NULL when nil.
func responseJSON(r *store.Response) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	return json.Marshal(responseRow{StatusCode: r.StatusCode, Headers: r.Headers})
}

// scanEvent reads a row of stateCols (full: eventCols) into e.
func scanEvent(row pgx.Row, e *store.Event, full bool) error {
	var (
		jti                         *uuid.UUID
		seq                         int64
		state                       int16
		reason                      int16
		dueAt, failedAt, exportedAt *time.Time
		failSeq                     int64
		response, history           []byte
		createdAt, updatedAt        time.Time
		dest                        []any
		attempts, roundStart        int32
	)
	dest = []any{&e.SubscriptionID, &seq, &e.ID, &jti, &e.Type, &e.Txn, &e.Toe, &e.Endpoint, &createdAt, &updatedAt,
		&state, &attempts, &roundStart, &dueAt, &failSeq, &failedAt, &reason, &exportedAt, &e.JWS, &response}
	if full {
		dest = append(dest, &e.Payload, &history)
	}
	if err := row.Scan(dest...); err != nil {
		return err
	}
	e.Seq, e.FailSeq = uint64(seq), uint64(failSeq)
	e.Jti = uuid.UUID{}
	if jti != nil {
		e.Jti = *jti
	}
	e.State, e.Reason = store.State(state), store.ReasonCode(reason)
	e.Attempts, e.RoundStart = int(attempts), int(roundStart)
	e.CreatedAt, e.UpdatedAt = createdAt.UTC(), updatedAt.UTC()
	e.DueAt, e.FailedAt, e.ExportedAt = derefTime(dueAt), derefTime(failedAt), derefTime(exportedAt)
	e.Response = nil
	if response != nil {
		var r responseRow
		if err := json.Unmarshal(response, &r); err != nil {
			return fmt.Errorf("event %d: response: %w", seq, err)
		}
		e.Response = &store.Response{StatusCode: r.StatusCode, Headers: r.Headers}
	}
	e.History = nil
	if full {
		var rows []historyRow
		if err := json.Unmarshal(history, &rows); err != nil {
			return fmt.Errorf("event %d: history: %w", seq, err)
		}
		e.History = make([]store.HistoryEntry, len(rows))
		for i, r := range rows {
			r.At = r.At.UTC()
			e.History[i] = store.HistoryEntry(r)
		}
	}
	return nil
}

// querier runs statements: in a transaction (pgx.Tx), or each on its own
// (the pool).
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// queryEvents reads the events sql selects (its columns stateCols, or
// eventCols when full), in the order it returns them.
func queryEvents(ctx context.Context, q querier, full bool, sql string, args ...any) ([]store.Event, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		if err := scanEvent(rows, &e, full); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// eventsBySeq reads sub's events seqs, in the order of seqs; those that
// are gone, or do not meet the SQL condition also (none when empty), are
// left out.
func eventsBySeq(ctx context.Context, q querier, full bool, sub uuid.UUID, seqs []uint64, also string) ([]store.Event, error) {
	cols := stateCols
	if full {
		cols = eventCols
	}
	if also != "" {
		also = " AND " + also
	}
	evs, err := queryEvents(ctx, q, full, `SELECT `+cols+` FROM events WHERE subscription_id = $1 AND seq = ANY($2)`+also, sub, int64s(seqs))
	if err != nil {
		return nil, err
	}
	pos := make(map[uint64]int, len(seqs))
	for i, s := range seqs {
		pos[s] = i
	}
	slices.SortFunc(evs, func(a, b store.Event) int { return pos[a.Seq] - pos[b.Seq] })
	return evs, nil
}

// eventRow is the row of a new event for the COPY that inserts it, with
// subject, the JSON text of its event object's "sub" (nil: none).
func eventRow(e *store.Event, subject *string) ([]any, error) {
	history, err := historyJSON(e.History)
	if err != nil {
		return nil, err
	}
	var jti *uuid.UUID
	if e.Jti != (uuid.UUID{}) {
		jti = &e.Jti
	}
	return []any{e.SubscriptionID, int64(e.Seq), e.ID, jti, e.Type, e.Txn, e.Toe, e.Payload, e.Endpoint,
		e.CreatedAt, e.UpdatedAt, int16(e.State), int32(e.Attempts), int32(e.RoundStart), nullTime(e.DueAt),
		int64(e.FailSeq), nullTime(e.FailedAt), int16(e.Reason), nullTime(e.ExportedAt), e.JWS, string(history), subject}, nil
}

// insertCols are the columns eventRow fills.
var insertCols = []string{"subscription_id", "seq", "id", "jti", "type", "txn", "toe", "payload", "endpoint",
	"created_at", "updated_at", "state", "attempts", "round_start", "due_at",
	"fail_seq", "failed_at", "reason", "exported_at", "jws", "history", "subject"}

// eventUpdates gathers the writes of events' changed states, each with the
// history rows added (e.History[from:]) appended to the stored ones, for
// one statement: an UPDATE joining the rows to arrays of their new values
// costs the server one execution for all of them instead of one per event.
type eventUpdates struct {
	sub                         [][16]byte // uuid.UUID's type, which pgx encodes without reflection
	seq, failSeq                []int64
	state, reason               []int16
	attempts, roundStart        []int32
	dueAt, failedAt, exportedAt []pgtype.Timestamptz
	updatedAt                   []time.Time
	jws, endpoint, added        []string
	response                    []pgtype.Text
}

// add gathers the write of e's state; an event is added once.
func (u *eventUpdates) add(e *store.Event, from int) error {
	added, err := historyJSON(e.History[from:])
	if err != nil {
		return err
	}
	response, err := responseJSON(e.Response)
	if err != nil {
		return err
	}
	resp := pgtype.Text{String: string(response), Valid: response != nil}
	u.sub, u.seq = append(u.sub, [16]byte(e.SubscriptionID)), append(u.seq, int64(e.Seq))
	u.state, u.attempts, u.roundStart = append(u.state, int16(e.State)), append(u.attempts, int32(e.Attempts)), append(u.roundStart, int32(e.RoundStart))
	u.dueAt, u.failSeq, u.failedAt = append(u.dueAt, timestamptz(e.DueAt)), append(u.failSeq, int64(e.FailSeq)), append(u.failedAt, timestamptz(e.FailedAt))
	u.reason, u.exportedAt = append(u.reason, int16(e.Reason)), append(u.exportedAt, timestamptz(e.ExportedAt))
	u.jws, u.endpoint, u.updatedAt = append(u.jws, e.JWS), append(u.endpoint, e.Endpoint), append(u.updatedAt, e.UpdatedAt)
	u.response, u.added = append(u.response, resp), append(u.added, string(added))
	return nil
}

// exec writes the gathered changes in tx, if any.
func (u *eventUpdates) exec(ctx context.Context, tx pgx.Tx) error {
	var b pgx.Batch
	u.queue(&b)
	return sendBatch(ctx, tx, &b)
}

// queue queues the gathered writes on b, if any.
func (u *eventUpdates) queue(b *pgx.Batch) {
	if len(u.sub) == 0 {
		return
	}
	b.Queue(`UPDATE events AS e SET state = u.state, attempts = u.attempts, round_start = u.round_start, due_at = u.due_at,
	fail_seq = u.fail_seq, failed_at = u.failed_at, reason = u.reason, exported_at = u.exported_at, jws = u.jws,
	endpoint = u.endpoint, updated_at = u.updated_at, response = u.response::jsonb, history = e.history || u.added::jsonb
FROM unnest($1::uuid[], $2::bigint[], $3::smallint[], $4::integer[], $5::integer[], $6::timestamptz[], $7::bigint[],
	$8::timestamptz[], $9::smallint[], $10::timestamptz[], $11::text[], $12::text[], $13::timestamptz[], $14::text[], $15::text[])
	AS u(subscription_id, seq, state, attempts, round_start, due_at, fail_seq, failed_at, reason, exported_at, jws,
	endpoint, updated_at, response, added)
WHERE e.subscription_id = u.subscription_id AND e.seq = u.seq`,
		u.sub, u.seq, u.state, u.attempts, u.roundStart, pgtype.FlatArray[pgtype.Timestamptz](u.dueAt), u.failSeq,
		pgtype.FlatArray[pgtype.Timestamptz](u.failedAt), u.reason, pgtype.FlatArray[pgtype.Timestamptz](u.exportedAt),
		u.jws, u.endpoint, u.updatedAt, pgtype.FlatArray[pgtype.Text](u.response), u.added)
}

// timestamptz is t as a nullable column's value: NULL when zero.
func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// sendBatch sends b's queries in one round trip and returns the first error.
func sendBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// int64s converts sequence numbers for a bigint[] parameter.
func int64s(seqs []uint64) []int64 {
	out := make([]int64, len(seqs))
	for i, s := range seqs {
		out[i] = int64(s)
	}
	return out
}

// fail moves e to failure with reason and its code, handing out a failure
// sequence unless the event was exported before (the bolt backend's fail).
func fail(e *store.Event, st *stats, now time.Time, reason string, code store.ReasonCode, status int) {
	st.Count(e.State, store.Failure)
	e.Reason = code
	st.FailedAs(code)
	e.State = store.Failure
	e.FailedAt = now
	e.DueAt = time.Time{}
	if e.ExportedAt.IsZero() {
		st.FailSeq++
		e.FailSeq = st.FailSeq
	}
	e.History = append(e.History, store.HistoryEntry{At: now, State: store.Failure, Attempt: e.Attempts, StatusCode: status, Reason: reason, Code: code})
}

// subCols are the subscription's columns the events' methods read:
// scanSubFields fills those members of a store.Subscription.
const subCols = `id, customer_id, endpoint, enabled, disabled_reason`

func scanSubFields(row pgx.Row, s *store.Subscription) error {
	return row.Scan(&s.ID, &s.CustomerID, &s.Endpoint, &s.Enabled, &s.DisabledReason)
}

// subscriptionByID reads subscription id (the members of subCols); nil
// when it does not exist.
func subscriptionByID(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*store.Subscription, error) {
	var s store.Subscription
	err := scanSubFields(tx.QueryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE id = $1`, id), &s)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// customerSubscription reads the customer's subscription id (the members
// of subCols): ErrNotFound when it does not exist or is another
// customer's.
func customerSubscription(ctx context.Context, tx pgx.Tx, customerID, id uuid.UUID) (store.Subscription, error) {
	var s store.Subscription
	err := scanSubFields(tx.QueryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE id = $1 AND customer_id = $2`, id, customerID), &s)
	return s, err
}
