package postgres

// migrations are the schema's versions, applied in order at Open, each in
// its own transaction with the version bump; the schema's version is the
// number applied. A migration is never edited once released: a change is a
// new one, with a test on data of the version before (migrations_test.go).
//
// Conventions: ids are uuid; times are timestamptz (the store's clock is
// truncated to microseconds, PostgreSQL's precision, so a time reads back
// equal to what was written); states and reason codes are the smallint
// values of store.State and store.ReasonCode; event sequence numbers come
// from one sequence, as in the bolt backend, so an event's public id
// (store.EventID) finds its row by (subscription_id, seq).
var migrations = []string{
	// 1: the whole schema.
	`
CREATE TABLE customers (
	id         uuid PRIMARY KEY,
	created_at timestamptz NOT NULL
);

CREATE TABLE clients (
	id          uuid PRIMARY KEY,
	customer_id uuid NOT NULL REFERENCES customers (id),
	secret_hash bytea NOT NULL,
	created_at  timestamptz NOT NULL
);
CREATE INDEX clients_by_customer ON clients (customer_id, created_at);

CREATE TABLE tokens (
	hash        bytea PRIMARY KEY,
	customer_id uuid NOT NULL,
	client_id   uuid NOT NULL,
	scope       text NOT NULL,
	expires_at  timestamptz NOT NULL,
	revoked     boolean NOT NULL DEFAULT false
);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
CREATE INDEX tokens_by_client ON tokens (client_id);

-- A customer's key set (store.KeySet): its rotation time here, its keys
-- one row each in signing_keys.
CREATE TABLE key_sets (
	customer_id uuid PRIMARY KEY REFERENCES customers (id),
	rotated_at  timestamptz NOT NULL
);

-- One signing key: position is its triple's place in the set
-- (store.KeySet.Triples: RS256 first), role 0 previous, 1 current, 2 next;
-- alg is the key's own store.StoredKey.Alg (empty is RS256).
CREATE TABLE signing_keys (
	customer_id uuid NOT NULL REFERENCES key_sets (customer_id),
	position    smallint NOT NULL,
	role        smallint NOT NULL,
	alg         text NOT NULL,
	kid         text NOT NULL,
	der         bytea NOT NULL,
	PRIMARY KEY (customer_id, position, role)
);

CREATE TABLE subscriptions (
	id              uuid PRIMARY KEY,
	customer_id     uuid NOT NULL,
	title           text NOT NULL,
	endpoint        text NOT NULL,
	events          text[],            -- NULL: a nil list
	enabled         boolean NOT NULL,
	-- The filter's JSON as the bolt backend keeps it (compacted, nothing
	-- escaped): text, since jsonb would reorder and re-escape it.
	filter          text,
	signing_alg     text NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	disabled_at     timestamptz,
	disabled_reason text NOT NULL DEFAULT '',
	UNIQUE (customer_id, title)
);
CREATE INDEX subscriptions_by_customer ON subscriptions (customer_id, created_at, id);

-- A subscription's counters (the bolt backend's subStats), kept with
-- every change of its events' states. Created with the subscription and
-- deleted with it, as in the bolt backend: a deleted subscription's
-- events still being purged count nowhere.
CREATE TABLE sub_stats (
	subscription_id uuid PRIMARY KEY,
	waiting         bigint NOT NULL DEFAULT 0,
	retrying        bigint NOT NULL DEFAULT 0,
	succeeded       bigint NOT NULL DEFAULT 0,
	failed          bigint NOT NULL DEFAULT 0,
	fail_seq        bigint NOT NULL DEFAULT 0, -- last failure sequence handed out
	watermark       bigint NOT NULL DEFAULT 0, -- failure sequences at or below it are exported
	updated_at      timestamptz,
	failing_since   timestamptz,
	failed_by       bigint[] NOT NULL DEFAULT '{}' -- failed events by reason code: element i+1 counts code i
);

-- Deleted subscriptions whose events and exports are still being purged.
CREATE TABLE tombstones (
	subscription_id uuid PRIMARY KEY,
	customer_id     uuid NOT NULL
);

CREATE SEQUENCE event_seq;

-- One row per event per subscription.
CREATE TABLE events (
	subscription_id uuid NOT NULL,
	seq             bigint NOT NULL,
	id              uuid NOT NULL,
	jti             uuid,              -- the sender's id; NULL: the jti is id
	type            text NOT NULL,
	txn             text NOT NULL DEFAULT '',
	toe             bigint NOT NULL,
	payload         bytea NOT NULL,
	endpoint        text NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	state           smallint NOT NULL,
	attempts        integer NOT NULL DEFAULT 0,
	round_start     integer NOT NULL DEFAULT 0,
	due_at          timestamptz,       -- while awaiting an attempt
	fail_seq        bigint NOT NULL DEFAULT 0,
	failed_at       timestamptz,
	reason          smallint NOT NULL DEFAULT 0,
	exported_at     timestamptz,
	jws             text NOT NULL DEFAULT '',
	response        jsonb,             -- store.Response of the last attempt
	history         jsonb NOT NULL DEFAULT '[]',
	PRIMARY KEY (subscription_id, seq)
);
-- What is due, per subscription, in due order (the dispatcher).
CREATE INDEX events_due ON events (subscription_id, due_at, seq) WHERE due_at IS NOT NULL;
-- Failed events in failure order (exports and redelivery).
CREATE INDEX events_failures ON events (subscription_id, fail_seq) WHERE fail_seq > 0;
-- Retention: the janitor deletes by creation time in bounded batches.
CREATE INDEX events_by_created ON events (created_at);

-- Export jobs: store.ExportJob as JSON, with the columns they are found
-- by. cooldown_from is the completion time of a job that exported at
-- least one event (the start of its subscription's cooldown), else NULL.
CREATE TABLE exports (
	id              uuid PRIMARY KEY,
	customer_id     uuid NOT NULL,
	subscription_id uuid NOT NULL,
	state           text NOT NULL,
	created_at      timestamptz NOT NULL,
	cooldown_from   timestamptz,
	job             jsonb NOT NULL
);
CREATE INDEX exports_by_subscription ON exports (subscription_id, created_at, id);
CREATE INDEX exports_active ON exports (created_at, id) WHERE state IN ('processing', 'writing');

-- Completed exports with events: the upper failure sequence of each
-- range, so that an event shows when it was exported.
CREATE TABLE export_ranges (
	subscription_id uuid NOT NULL,
	to_fail_seq     bigint NOT NULL,
	job_id          uuid NOT NULL,
	PRIMARY KEY (subscription_id, to_fail_seq)
);

-- Senders' event ids, per customer (scope = the nil UUID) or per scope.
CREATE TABLE intake_ids (
	customer_id uuid NOT NULL,
	scope       uuid NOT NULL,
	id          uuid NOT NULL,
	recorded_at timestamptz NOT NULL,
	PRIMARY KEY (customer_id, scope, id)
);
CREATE INDEX intake_ids_by_time ON intake_ids (recorded_at);

-- Answers kept under an intake request's Idempotency-Key.
CREATE TABLE intake_keys (
	customer_id  uuid NOT NULL,
	key_hash     bytea NOT NULL,
	created_at   timestamptz NOT NULL,
	request_hash bytea NOT NULL,
	answer       bytea NOT NULL,
	PRIMARY KEY (customer_id, key_hash)
);
CREATE INDEX intake_keys_by_time ON intake_keys (created_at);

-- Outcomes per subscription per hour (span 'h') and minute (span 'm').
CREATE TABLE timeline (
	subscription_id uuid NOT NULL,
	span            "char" NOT NULL,
	start           timestamptz NOT NULL,
	succeeded       bigint NOT NULL DEFAULT 0,
	failed          bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (subscription_id, span, start)
);
CREATE INDEX timeline_by_start ON timeline (start);
`,
	// 2: the cluster (cluster.go, claims.go): the nodes sharing the
	// database, the due events' claims, and the notifications that wake
	// the nodes, sent by triggers in the writing transaction (delivered at
	// its commit, dropped with its rollback): hookd_due carries the
	// subscriptions with new due events, comma separated, at most 100 of
	// them per notification (a payload stays far below PostgreSQL's 8000
	// bytes); hookd_subscriptions says that subscriptions changed;
	// hookd_keys carries a customer whose signing keys changed.
	`
CREATE TABLE nodes (
	id         uuid PRIMARY KEY,
	name       text NOT NULL,
	started_at timestamptz NOT NULL,
	seen_at    timestamptz NOT NULL
);
CREATE INDEX nodes_by_seen ON nodes (seen_at);

-- A due event's claim (claims.go): the node attempting it until
-- claimed_until. It holds only while the event's due_at is still the one
-- it was claimed at (claimed_due): recording the attempt moves or clears
-- due_at, which ends the claim without another write.
ALTER TABLE events
	ADD COLUMN claimed_by    uuid,
	ADD COLUMN claimed_until timestamptz,
	ADD COLUMN claimed_due   timestamptz;
-- The claims not yet expired of a subscription's waiting events, counted
-- by every claim: a read of at most a lease's worth of claims, not of the
-- subscription's whole backlog.
CREATE INDEX events_claims ON events (subscription_id, claimed_until)
	WHERE due_at IS NOT NULL AND claimed_until IS NOT NULL;

CREATE FUNCTION hookd_notify_due() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	batch text;
BEGIN
	FOR batch IN
		SELECT string_agg(sub::text, ',')
		FROM (SELECT sub, (row_number() OVER (ORDER BY sub) - 1) / 100 AS chunk
		      FROM (SELECT DISTINCT subscription_id AS sub FROM new_events WHERE due_at IS NOT NULL) AS due) AS numbered
		GROUP BY chunk
	LOOP
		PERFORM pg_notify('hookd_due', batch);
	END LOOP;
	RETURN NULL;
END
$$;
CREATE TRIGGER events_notify_due AFTER INSERT ON events
	REFERENCING NEW TABLE AS new_events
	FOR EACH STATEMENT EXECUTE FUNCTION hookd_notify_due();

CREATE FUNCTION hookd_notify_subscriptions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('hookd_subscriptions', '');
	RETURN NULL;
END
$$;
CREATE TRIGGER subscriptions_notify AFTER INSERT OR UPDATE OR DELETE ON subscriptions
	FOR EACH STATEMENT EXECUTE FUNCTION hookd_notify_subscriptions();

CREATE FUNCTION hookd_notify_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('hookd_keys', NEW.customer_id::text);
	RETURN NULL;
END
$$;
CREATE TRIGGER key_sets_notify AFTER INSERT OR UPDATE ON key_sets
	FOR EACH ROW EXECUTE FUNCTION hookd_notify_keys();
`,
	// 3: the export jobs' queue over the nodes (exportqueue.go): a job is
	// written by the node holding its claim (claimed_by, until
	// claimed_until, fenced by claim_token), and the customers' turns of
	// the fair queue are kept here for every node: the customer with the
	// lowest turn goes next, the one served takes the next value of
	// export_turn.
	`
ALTER TABLE exports
	ADD COLUMN claimed_by    uuid,
	ADD COLUMN claimed_until timestamptz,
	ADD COLUMN claim_token   uuid;

CREATE SEQUENCE export_turn;

CREATE TABLE export_turns (
	customer_id uuid PRIMARY KEY,
	turn        bigint NOT NULL
);
`,
	// 4: the details of the events' last attempts (store.AttemptDetail),
	// one row per attempt kept, deleted with their event by the foreign
	// key; and the search of a subscription's events by txn and by the
	// top-level "sub" of their event object: subject is that member's JSON
	// text as the event holds it (store.SubjectText), written by hookd
	// when it records the event rather than computed here, so that no
	// JSON PostgreSQL will not parse (a \u0000 escape) can make a record
	// fail. Events recorded before this version have none.
	`
CREATE TABLE attempt_details (
	subscription_id uuid NOT NULL,
	seq             bigint NOT NULL,
	attempt         integer NOT NULL,
	status_code     integer NOT NULL,
	headers         jsonb NOT NULL DEFAULT '[]', -- store.Header list
	body            bytea,
	PRIMARY KEY (subscription_id, seq, attempt),
	FOREIGN KEY (subscription_id, seq) REFERENCES events (subscription_id, seq) ON DELETE CASCADE
);

ALTER TABLE events ADD COLUMN subject text;
CREATE INDEX events_by_txn ON events (subscription_id, txn);
CREATE INDEX events_by_subject ON events (subscription_id, subject);
`,
	// 5: a node alone attempts without claims (claims.go, solo): while
	// solo_until is ahead it may start attempts that claim nothing; while
	// it is live and solo_clear is ahead (those attempts may still run),
	// the other nodes claim nothing.
	`
ALTER TABLE nodes
	ADD COLUMN solo_until timestamptz,
	ADD COLUMN solo_clear timestamptz;
`,
	// 6: the nodes claim subscriptions, not events (claims.go): a
	// subscription's due events are attempted by the live node holding
	// its row here. The claims of single events (a write of the event's
	// row per attempt, and an entry in each of its indexes) and the solo
	// node of migration 5 go.
	`
CREATE TABLE lane_claims (
	subscription_id uuid PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
	node_id         uuid NOT NULL,
	claimed_at      timestamptz NOT NULL
);
CREATE INDEX lane_claims_by_node ON lane_claims (node_id);

DROP INDEX events_claims;
ALTER TABLE events
	DROP COLUMN claimed_by,
	DROP COLUMN claimed_until,
	DROP COLUMN claimed_due;
ALTER TABLE nodes
	DROP COLUMN solo_until,
	DROP COLUMN solo_clear;
`,
	// 7: the intake's count of new waiting events, kept apart from
	// sub_stats so that the intake takes no lock of the counters
	// (stats.go, statsCache): a row per transaction and subscription,
	// folded into sub_stats by the next transaction that locks them.
	`
CREATE TABLE intake_counts (
	subscription_id uuid NOT NULL,
	id              bigint GENERATED ALWAYS AS IDENTITY,
	waiting         bigint NOT NULL,
	added_at        timestamptz NOT NULL,
	PRIMARY KEY (subscription_id, id)
);
`,
	// 8: new due events are announced (hookd_due) after their commit, by
	// the store (duenotes.go), no longer by a trigger in the recording
	// transaction: PostgreSQL commits notifying transactions one at a
	// time, each through its flush to disk.
	`
DROP TRIGGER events_notify_due ON events;
DROP FUNCTION hookd_notify_due();
`,
}
