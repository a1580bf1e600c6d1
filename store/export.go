package store

import (
	"time"

	"github.com/google/uuid"
)

// ExportState is an export job's state.
type ExportState string

// Export job states.
const (
	ExportProcessing ExportState = "processing"
	ExportWriting    ExportState = "writing"
	ExportCompleted  ExportState = "completed"
	ExportCanceled   ExportState = "canceled"
	ExportFailed     ExportState = "failed"
)

// Active reports whether a job in this state has not ended.
func (s ExportState) Active() bool { return s == ExportProcessing || s == ExportWriting }

// ExportScope is where at most one export job may be active at a time.
// A scope never spans customers: jobs of different customers never refuse
// each other (they wait their turn in the exporter's queue).
type ExportScope string

// Export scopes.
const (
	ScopeCustomer     ExportScope = "customer"     // one per customer
	ScopeSubscription ExportScope = "subscription" // one per subscription
	// DefaultExportScope is the scope when none is configured.
	DefaultExportScope = ScopeCustomer
)

// Reasons of the conflicts CreateExport returns.
const (
	// TooManyActiveExports: another job is active in the job's scope.
	TooManyActiveExports = "Too many active exports"
	// NothingToExport: the subscription has no failed event that was not
	// exported, so a job would only write an empty file (and start a
	// cooldown).
	NothingToExport = "Nothing to export"
)

// ExportJob is a bulk export of a subscription's failed events. It covers
// the failure sequences (FromSeq, ToSeq].
type ExportJob struct {
	ID             uuid.UUID   `json:"id"`
	CustomerID     uuid.UUID   `json:"customerId"`
	SubscriptionID uuid.UUID   `json:"subscriptionId"`
	State          ExportState `json:"state"`
	CreatedAt      time.Time   `json:"createdAt"`
	UpdatedAt      time.Time   `json:"updatedAt"`
	CompletedAt    time.Time   `json:"completedAt,omitzero"`
	FromSeq        uint64      `json:"fromSeq"`
	ToSeq          uint64      `json:"toSeq"`
	EventCount     int64       `json:"eventCount"`
	Encoding       string      `json:"encoding,omitempty"`
	Key            string      `json:"key,omitempty"`
	Size           int64       `json:"size,omitempty"`
	ETag           string      `json:"etag,omitempty"`
	Error          string      `json:"error,omitempty"`         // detail of the last failure, for the operator only
	FailureReason  string      `json:"failureReason,omitempty"` // why a failed job failed, one of the Failure* values
	Attempts       int         `json:"attempts,omitempty"`      // times writing began
	// The retry state of a job whose writes failed on the blob store: it
	// waits in processing until RetryAt; it has been retried since
	// RetryingSince; BlobErrors writes failed so (they are among Attempts).
	RetryAt       time.Time `json:"retryAt,omitzero"`
	RetryingSince time.Time `json:"retryingSince,omitzero"`
	BlobErrors    int       `json:"blobErrors,omitempty"`
}

// Interruptions is the number of writes that began and ended neither in a
// commit nor in a blob store error: those cut off by a shutdown or a crash.
func (j ExportJob) Interruptions() int { return j.Attempts - j.BlobErrors }

// Why an export job failed (ExportJob.FailureReason): words a customer
// can read, with no internal detail.
const (
	// FailureStorageUnavailable: the blob store kept failing the writes
	// for the whole retry period.
	FailureStorageUnavailable = "storage-unavailable"
	// FailureInterrupted: writing was cut off by shutdowns or crashes too
	// many times.
	FailureInterrupted = "interrupted"
	// FailureSubscriptionDeleted: the subscription was deleted before the
	// file was committed.
	FailureSubscriptionDeleted = "subscription-deleted"
	// FailureInternal: anything else; the log has the detail under the
	// job's id.
	FailureInternal = "internal-error"
)

// ExportResult describes a committed export file.
type ExportResult struct {
	Key        string
	Size       int64  // stored bytes
	ETag       string // strong entity tag of the stored bytes, quoted
	EventCount int64
}

// ExportEvent is what one line of an export file is made of. Its byte
// slices point into the store and are valid only during the ScanExport
// callback that receives it.
type ExportEvent struct {
	ID        uuid.UUID
	Jti       uuid.UUID // the sender's id, the jti; zero: the jti is ID
	CreatedAt time.Time
	Toe       int64
	Type      []byte
	Txn       []byte
	Endpoint  []byte
	Payload   []byte // the event object, compact JSON
	JWS       []byte // the token as sent, empty when never signed
}
