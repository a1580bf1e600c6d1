package delivery

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps the wait a Retry-After header can ask for.
const MaxRetryAfter = 24 * time.Hour

// Schedule is the retry schedule of one event to one endpoint.
type Schedule struct {
	// Delays[i] is the wait before attempt i+1; len(Delays) is the number
	// of attempts.
	Delays []time.Duration
	// Jitter is the largest random fraction of a delay added to it:
	// 0.10 makes a 30 s delay last between 30 s and 33 s.
	Jitter float64
}

// Defaults of the retry schedule. DefaultRetrySchedule is written as the
// serve flag --retry-schedule takes it: the waits before each attempt,
// comma-separated.
const (
	DefaultRetrySchedule = "0s,3s,30s,5m,1h,24h"
	DefaultJitter        = 0.10
)

// DefaultSchedule returns hookd's default schedule: six attempts, the first
// at once, then after 3 s, 30 s, 5 min, 1 h and 24 h
// (DefaultRetrySchedule), each with up to 10% jitter (DefaultJitter).
func DefaultSchedule() Schedule {
	return Schedule{Delays: slices.Clone(defaultDelays), Jitter: DefaultJitter}
}

// defaultDelays is DefaultRetrySchedule parsed.
var defaultDelays = func() []time.Duration {
	var out []time.Duration
	for p := range strings.SplitSeq(DefaultRetrySchedule, ",") {
		d, err := time.ParseDuration(p)
		if err != nil {
			panic("delivery: DefaultRetrySchedule: " + err.Error())
		}
		out = append(out, d)
	}
	return out
}()

// Attempts returns the number of attempts the schedule allows.
func (s Schedule) Attempts() int { return len(s.Delays) }

// Next returns the wait before the next attempt, given the number of
// attempts made so far. ok is false when the attempts are exhausted. The
// wait is Delays[attempt] plus a random share of up to Jitter of it; a
// retryAfter (from ParseRetryAfter) longer than that wins. rnd supplies the
// randomness; nil uses the global source.
func (s Schedule) Next(attempt int, retryAfter time.Duration, rnd *rand.Rand) (wait time.Duration, ok bool) {
	if attempt < 0 {
		attempt = 0
	}
	if attempt >= len(s.Delays) {
		return 0, false
	}
	wait = max(s.Delays[attempt], 0)
	if s.Jitter > 0 && wait > 0 {
		if span := int64(float64(wait) * s.Jitter); span > 0 {
			if rnd != nil {
				wait += time.Duration(rnd.Int64N(span + 1))
			} else {
				wait += time.Duration(rand.Int64N(span + 1))
			}
		}
	}
	if retryAfter > wait {
		wait = retryAfter
	}
	return wait, true
}

// ParseRetryAfter returns the wait a Retry-After header value asks for,
// given as delay-seconds or as an HTTP-date relative to now. It returns 0
// when h is empty, invalid or in the past, and caps the wait at
// MaxRetryAfter.
func ParseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if isDigits(h) {
		secs, err := strconv.ParseInt(h, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) {
			// Only overflow fails on digits: too long to wait.
			return MaxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}
