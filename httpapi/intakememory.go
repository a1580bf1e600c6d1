package httpapi

import (
	"io"
	"net/http"
	"strconv"

	"golang.org/x/sync/semaphore"
)

// DefaultIntakeMemory bounds the memory that intake requests hold at
// once, in bytes, as estimated by intakeMemoryPerByte: one request of the
// largest body (64 MiB) takes all of it. Measured, one such request peaks
// under 512 MB of RSS, and so does any number of concurrent ones.
const DefaultIntakeMemory = 256 << 20

// intakeMemoryPerByte estimates the live memory an intake request holds
// per byte of its body: the body itself, the records encoded from its
// events, and the store's copies of them in the write's pages.
const intakeMemoryPerByte = 4

// intakeRetryAfter is the Retry-After, in seconds, of an intake request
// refused because others hold the intake's memory.
const intakeRetryAfter = "1"

// intakeMemory is the budget of bytes that intake requests share; a
// request reserves its share before it reads its body. A weighted
// semaphore (x/sync) does exactly that accounting.
type intakeMemory struct {
	sem      *semaphore.Weighted
	capacity int64
	reserved func(weight int64) // tests observe reservations; nil otherwise
}

func newIntakeMemory(capacity int64) *intakeMemory {
	return &intakeMemory{sem: semaphore.NewWeighted(capacity), capacity: capacity}
}

// reserve reserves the memory of a request whose body has length bytes
// (-1: unknown, counted as the largest body, limit). A request over limit
// is 413 at once; when the budget is taken by others it is 503 with
// Retry-After. A request may always take the whole budget alone, so one
// larger than the budget still passes when nothing else runs.
func (m *intakeMemory) reserve(length, limit int64) (release func(), err error) {
	if length > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	if length < 0 {
		length = limit
	}
	weight := min(intakeMemoryPerByte*max(length, 1), m.capacity)
	if !m.sem.TryAcquire(weight) {
		e := problem(http.StatusServiceUnavailable, "intake-busy",
			"other intake requests hold the memory the intake may use ("+strconv.FormatInt(m.capacity, 10)+
				" bytes); nothing was stored; retry after the number of seconds in Retry-After")
		e.retryAfter = intakeRetryAfter
		return nil, e
	}
	if m.reserved != nil {
		m.reserved(weight)
	}
	return func() { m.sem.Release(weight) }, nil
}

// readIntakeBody reads an intake body of at most limit bytes, into a
// buffer of its exact size when its length is known (io.ReadAll would
// hold up to twice the body while it grows its buffer).
func readIntakeBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength < 0 {
		return readBody(w, r, limit)
	}
	buf := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(http.MaxBytesReader(w, r.Body, limit), buf); err != nil {
		return nil, err
	}
	return buf, nil
}
