package store

import (
	"bytes"
	"encoding/json"
	"time"
)

// EventQuery selects events in Events.
type EventQuery struct {
	State  State      // 0 for any
	Type   string     // the event type ("entityCreated"...), "" for any
	After  time.Time  // created strictly after, when set
	Before time.Time  // created strictly before, when set
	Desc   bool       // newest first; oldest first when false
	Reason ReasonCode // the event's latest failure code, when set
	// Txn and Subject, when set, search: the events whose txn, or whose
	// event object's top-level "sub", is exactly that. A store without an
	// index for them looks at the subscription's newest SearchScanLimit
	// events only.
	Txn     string
	Subject string
	Offset  int
	Limit   int
	// Filter, when not nil, keeps only the events for which it returns
	// true, given their sequence number and stored state. The dispatcher's
	// in-flight set is applied through it.
	Filter func(seq uint64, state State) bool
}

// Summary is a subscription's counts over its stored events.
type Summary struct {
	UpdatedAt  time.Time
	Succeeded  uint64
	Retrying   uint64 // awaiting an attempt or a retry
	Failed     uint64
	Exportable uint64 // failed and not yet exported
	// FailedBy counts the failed events by reason code (index: the code);
	// failures recorded before codes existed are in none.
	FailedBy [NumReasons]uint64
}

// SearchScanLimit bounds the events a store without a search index reads
// for a query with Txn or Subject: the subscription's newest ones.
const SearchScanLimit = 100_000

// Searches reports whether q searches by txn or subject.
func (q *EventQuery) Searches() bool { return q.Txn != "" || q.Subject != "" }

// SubjectJSON is the JSON text of subject as a search by Subject matches it
// in an event object: a JSON string with no escapes but those JSON needs
// (a stored event holds its object as the sender wrote it, compacted, so a
// sender that escaped other characters of its "sub" is not found by it).
func SubjectJSON(subject string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(subject) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// SubjectText returns the JSON text of the top-level member "sub" of the
// event object payload, as the payload holds it; nil when it has none.
func SubjectText(payload []byte) []byte {
	var members map[string]json.RawMessage
	if json.Unmarshal(payload, &members) != nil {
		return nil
	}
	return members["sub"]
}
