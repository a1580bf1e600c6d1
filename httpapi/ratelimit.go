package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the per-client request rate (Options.ClientRate and
// ClientBurst).
const (
	DefaultClientRate  = 100.0
	DefaultClientBurst = 200
)

// Bounds of the limiter table: past maxLimiters clients, the buckets idle
// for limiterIdle and long enough to be full again (so that forgetting them
// changes nothing) are dropped, and if none is, the table starts afresh.
const (
	maxLimiters = 100_000
	limiterIdle = time.Minute
)

// clientLimiter is a token bucket per API client: every call a client
// makes with its access token, and every token request naming it, takes
// one token. golang.org/x/time/rate does the bucket arithmetic; this keeps
// one per client, bounded.
type clientLimiter struct {
	// total and totalBurst are the configured rate and burst; rate and
	// burst this process's share of them (see share).
	total      rate.Limit
	totalBurst int
	rate       rate.Limit
	burst      int

	mu sync.Mutex
	m  map[string]*clientBucket
}

type clientBucket struct {
	lim  *rate.Limiter
	last time.Time
}

// newClientLimiter returns a limiter of perSecond requests per client with
// bursts of burst; nil (no limit) when perSecond is negative.
func newClientLimiter(perSecond float64, burst int) *clientLimiter {
	if perSecond < 0 {
		return nil
	}
	if perSecond == 0 {
		perSecond = DefaultClientRate
	}
	if burst <= 0 {
		burst = max(DefaultClientBurst, int(math.Ceil(2*perSecond)))
	}
	return &clientLimiter{total: rate.Limit(perSecond), totalBurst: burst, rate: rate.Limit(perSecond), burst: burst, m: map[string]*clientBucket{}}
}

// share makes this process's buckets 1/nodes of the configured rate and
// burst (the burst rounded up), for the buckets there are and those to
// come: with several nodes behind a load balancer that spreads the calls,
// a client gets the configured rate from all of them together.
func (l *clientLimiter) share(nodes int, now time.Time) {
	if l == nil {
		return
	}
	nodes = max(nodes, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = l.total / rate.Limit(nodes)
	l.burst = (l.totalBurst + nodes - 1) / nodes
	for _, b := range l.m {
		b.lim.SetLimitAt(now, l.rate)
		b.lim.SetBurstAt(now, l.burst)
	}
}

// allow takes a token for key at now. When none is left it reports how
// long until one is.
func (l *clientLimiter) allow(key string, now time.Time) (ok bool, wait time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		if len(l.m) >= maxLimiters {
			l.sweep(now)
		}
		b = &clientBucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.m[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops the buckets idle long enough to be full, or all of them
// when none is. Callers hold l.mu.
func (l *clientLimiter) sweep(now time.Time) {
	idle := max(limiterIdle, time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)))
	for k, b := range l.m {
		if now.Sub(b.last) >= idle {
			delete(l.m, k)
		}
	}
	if len(l.m) >= maxLimiters {
		clear(l.m)
	}
}

// errTooManyRequests is the 429 of a client over its rate; Retry-After
// says in whole seconds when to call again.
func errTooManyRequests(wait time.Duration) *Error {
	e := problem(http.StatusTooManyRequests, "too-many-requests",
		"this client sends requests faster than the configured rate; retry after the number of seconds in Retry-After")
	e.retryAfter = strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
	return e
}

// SetClientShare divides the per-client rate and burst between nodes
// processes that share the store and the clients' calls (1: this process
// alone has them whole).
func (s *Server) SetClientShare(nodes int) { s.limiter.share(nodes, time.Now()) }

// limitClient answers 429 when the client key is over its rate.
func (s *Server) limitClient(key string) error {
	if ok, wait := s.limiter.allow(key, time.Now()); !ok {
		return errTooManyRequests(wait)
	}
	return nil
}
