package store

import (
	"time"

	"github.com/google/uuid"
)

// Store is hookd's state as its consumers need it: the API (httpapi), the
// dispatcher (delivery), the exporter and the janitor (jobs), and the
// wiring (serve). Two backends implement it: store/bolt, the embedded
// bbolt file and the default, and store/postgres. The behaviour suite in
// store/storetest holds both to the same answers.
//
// Every method owns its transaction: it commits before it returns, and a
// method that returns an error changed nothing. Methods that take a
// callback call it inside the transaction and must not call the store.
type Store interface {
	Tenants
	Subscriptions
	Events
	Exports
	Upkeep

	// Now returns the store's clock reading: the time it stamps records with.
	Now() time.Time
	// Ping reports whether the store can be reached now (readiness).
	Ping() error
	// Close releases the store; in-flight calls finish first.
	Close() error
}

// Tenants are the customers, their API clients, tokens and signing keys
// (the API and the dispatcher's key cache).
type Tenants interface {
	CreateClient(customerID, clientID uuid.UUID, secretHash []byte, newKeys func() (KeySet, error)) (Client, error)
	Clients(customerID uuid.UUID) ([]Client, error)
	RevokeClient(customerID, clientID uuid.UUID) error
	Authenticate(customerID, clientID uuid.UUID, secret string) (Client, error)
	PutToken(hash []byte, t Token) error
	LookupToken(hash []byte) (Token, error)
	CustomerExists(customerID uuid.UUID) (bool, error)
	Customers() ([]uuid.UUID, error)
	KeySet(customerID uuid.UUID) (KeySet, error)
	RotateKeys(customerID uuid.UUID, next []StoredKey) (KeySet, error)
	AddKeyTriples(customerID uuid.UUID, triples []KeyTriple) (KeySet, error)
}

// Subscriptions are the customers' subscriptions (the API, the intake's
// fan-out and the dispatcher).
type Subscriptions interface {
	CreateSubscription(s Subscription, limit int) error
	Subscription(customerID, id uuid.UUID) (Subscription, error)
	SubscriptionByID(id uuid.UUID) (Subscription, error)
	Subscriptions(customerID uuid.UUID) ([]Subscription, error)
	AllSubscriptions() ([]Subscription, error)
	UpdateSubscription(customerID, id uuid.UUID, change func(*Subscription) error) (before, after Subscription, err error)
	DeleteSubscription(customerID, id uuid.UUID) error
	// DisableSubscription disables subscription id for reason, unless an
	// attempt succeeded at or after failingBefore; it reports whether it did.
	DisableSubscription(id uuid.UUID, reason string, failingBefore time.Time) (Subscription, bool, error)
	// FailingSince returns the start of id's current run of failed
	// attempts, zero when its last attempt succeeded or none failed.
	FailingSince(id uuid.UUID) (time.Time, error)
	// SubscriptionsVersion changes whenever a subscription is created,
	// changed or deleted, so that callers may cache what they derive.
	SubscriptionsVersion() uint64
}

// Events are the notifications: intake, delivery, history, redelivery
// and the counts the API and the metrics show.
type Events interface {
	// RecordIntake records an intake request's events and deliveries,
	// skipping events whose ids are known, and keeps its answer under
	// its idempotency key; it returns only after the commit.
	RecordIntake(in Intake) (IntakeResult, error)
	AddEvents(events []NewEvent, deliveries []Delivery) ([]Added, error)
	Event(customerID, sub, id uuid.UUID) (Event, error)
	// EventAttempts returns the event with the details its store keeps of
	// its last attempts, oldest first (see AttemptDetail).
	EventAttempts(customerID, sub, id uuid.UUID) (Event, []AttemptDetail, error)
	Events(customerID, sub uuid.UUID, q EventQuery) ([]Event, int, error)
	Summary(customerID, sub uuid.UUID) (Summary, error)
	Timeline(customerID, sub uuid.UUID, from, to time.Time) ([]Outcomes, error)
	TimelineMinutes(customerID, sub uuid.UUID, from, to time.Time) ([]Outcomes, error)

	// DueSubscriptions returns the subscriptions with events waiting for
	// an attempt, each with its earliest due time.
	DueSubscriptions() (map[uuid.UUID]time.Time, error)
	// DueEvents returns up to limit of sub's events due at now, oldest
	// due first, leaving out those skip names, and the next due time
	// after them (zero when none).
	DueEvents(sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) (events []Event, next time.Time, err error)
	RecordAttempts(results []AttemptResult) error
	// FailWaiting moves up to limit of a disabled sub's waiting events to
	// failure and returns how many it moved.
	FailWaiting(sub uuid.UUID, limit int) (int, error)

	Redeliver(customerID, sub, id uuid.UUID) (Event, error)
	RedeliverAll(customerID, sub uuid.UUID, limit int) (int, error)
	// RedeliverFailed requeues up to limit of sub's failed events that q
	// selects, due as pace spreads them, and returns how many.
	RedeliverFailed(customerID, sub uuid.UUID, q FailedQuery, limit int, pace Pace) (int, error)

	// Backlog sums the waiting and retrying events of every subscription
	// and returns the earliest due time among them.
	Backlog() (waiting, retrying uint64, oldestDue time.Time, err error)
	// PendingGrowth estimates the bytes the store will grow by when the
	// waiting events have had their first attempt (zero where the store's
	// space is not the data directory's).
	PendingGrowth() (uint64, error)
}

// Exports are the export jobs of failed events (the API and the exporter).
type Exports interface {
	CreateExport(customerID, sub uuid.UUID, encoding string, scope ExportScope, cooldown time.Duration) (ExportJob, error)
	Export(customerID, sub, id uuid.UUID) (ExportJob, error)
	Exports(customerID, sub uuid.UUID, since time.Time) ([]ExportJob, error)
	ExportByID(id uuid.UUID) (ExportJob, error)
	ExportsByID(ids []uuid.UUID) (map[uuid.UUID]ExportJob, error)
	ActiveExports() ([]ExportJob, error)
	ExportStates() (map[ExportState]int, error)
	CancelExport(customerID, sub, id uuid.UUID) (ExportJob, error)
	BeginExportWrite(id uuid.UUID, key string) (ExportJob, error)
	ResumeExport(id uuid.UUID) (ExportJob, error)
	FailExport(id uuid.UUID, reason, detail string) (ExportJob, error)
	RetryExport(id uuid.UUID, retryAt time.Time, detail string) (ExportJob, error)
	// CompleteExport marks the job completed and its events exported in
	// one transaction.
	CompleteExport(id uuid.UUID, r ExportResult) (ExportJob, error)
	// ScanExport calls fn for the job's events after position after, up
	// to limit of them, and returns the position to go on from.
	ScanExport(job ExportJob, after uint64, failedSince time.Time, limit int, fn func(*ExportEvent) error) (next uint64, done bool, err error)
}

// Upkeep is what the janitor removes: expired records in bounded batches,
// and the data of deleted subscriptions. Each call removes at most limit
// records and returns how many it removed.
type Upkeep interface {
	PurgeExpiredEvents(cutoff time.Time, limit int) (int, error)
	Tombstones() ([]uuid.UUID, error)
	PurgeDeleted(sub uuid.UUID, limit int) (events, keys int, err error)
	DropTombstone(sub uuid.UUID) (bool, error)
	DeletedSubscriptionExports(sub uuid.UUID, limit int) ([]ExportJob, error)
	ExpiredExports(cutoff time.Time, limit int) ([]ExportJob, error)
	DeleteExports(ids []uuid.UUID) (int, error)
	DeleteExpiredTokens(now time.Time, limit int) (int, error)
	PurgeIntakeIDs(cutoff time.Time, limit int) (int, error)
	PurgeIdempotencyKeys(cutoff time.Time, limit int) (int, error)
	PurgeTimeline(cutoff time.Time, limit int) (int, error)
}
