package httpapi

import (
	"crypto/sha256"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"hookd/store"
)

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 255

// idempotencyKey returns the request's Idempotency-Key, empty when it has
// none: 1 to maxIdempotencyKey visible ASCII characters.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 {
		return "", nil
	}
	k := vals[0]
	bad := len(vals) > 1 || k == "" || len(k) > maxIdempotencyKey
	for i := 0; i < len(k) && !bad; i++ {
		bad = k[i] < 0x21 || k[i] > 0x7e
	}
	if bad {
		return "", errBadRequest("invalid-idempotency-key",
			"Idempotency-Key must be one value of 1 to "+strconv.Itoa(maxIdempotencyKey)+" visible ASCII characters")
	}
	return k, nil
}

// intakeRequestHash identifies what an intake request asks, so that a key
// sent again with another request is refused.
func intakeRequestHash(ndjson bool, body []byte) [sha256.Size]byte {
	h := sha256.New()
	if ndjson {
		h.Write([]byte(mediaNDJSON + "\n"))
	} else {
		h.Write([]byte(mediaJSON + "\n"))
	}
	h.Write(body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// hasSenderIDs reports whether any event carries the sender's id.
func hasSenderIDs(events []store.NewEvent) bool {
	for i := range events {
		if events[i].ID != (uuid.UUID{}) {
			return true
		}
	}
	return false
}

// intakeAnswer is the 202 answer of a request whose events were recorded
// as res says.
func intakeAnswer(events []store.NewEvent, res store.IntakeResult, subs []store.Subscription) intakeResponse {
	out := intakeResponse{
		Accepted: len(events), Recorded: len(res.Added),
		Subscriptions: groupAdded(res.Added, subs), Duplicates: make([]uuid.UUID, 0, len(res.Duplicates)),
	}
	for _, i := range res.Duplicates {
		out.Duplicates = append(out.Duplicates, events[i].ID)
	}
	return out
}

// writeReplay answers a repeated request with the body of its first answer.
func writeReplay(w http.ResponseWriter, body []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(body)
	return nil
}
