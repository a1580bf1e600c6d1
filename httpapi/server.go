// Package httpapi serves hookd's HTTP API: the Webhooks v3 customer API,
// the intake, the admin API, health checks and the console.
//
// Handlers are methods on Server that return an error; one writer turns
// errors into problem JSON (SPEC section 3). Every route is registered in
// routes.go, one per line.
package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"hookd/recovery"
	"hookd/store"
)

// Defaults for Options fields left zero.
const (
	DefaultTokenTTL          = time.Hour
	DefaultSubscriptionLimit = 100
	DefaultAPITimeout        = 10 * time.Second
	DefaultMaxBody           = 1 << 20
	DefaultMaxIntakeBody     = 64 << 20
	// DefaultMaxEventSize bounds one intake event's object as stored
	// (compacted) and as carried in the signed token, in line with what
	// webhook receivers accept.
	DefaultMaxEventSize = 64 << 10
	WebhooksScope       = "*:webhooks/**"
)

// Options are the server's dependencies and settings.
type Options struct {
	DB                store.Store
	Log               zerolog.Logger
	PublicURL         string // base URL for token issuers, without trailing slash
	AdminToken        string
	Dev               bool // allow http and loopback endpoints
	TokenTTL          time.Duration
	SubscriptionLimit int
	APITimeout        time.Duration // every API call answers within it
	MaxBody           int64         // JSON request bodies
	MaxIntakeBody     int64         // intake request bodies
	MaxEventSize      int           // one intake event's object, compacted, in bytes
	// IntakeMemory bounds the memory intake requests hold at once, in
	// bytes (estimated from their bodies); a request that does not fit is
	// 503 with Retry-After. Zero means DefaultIntakeMemory.
	IntakeMemory      int64
	Resolver          *net.Resolver // endpoint checks; net.DefaultResolver when nil
	Console           http.Handler  // served at /console/ when set
	Metrics           http.Handler  // served at /metrics when set
	Hooks             Hooks         // optional collaborators wired by main
	DeliveryUserAgent string        // the User-Agent of deliveries, shown in event resources
	Exports           ExportOptions // bulk exports of failed events
	// Recoveries runs the redeliveries of many failed events; without
	// it POST .../events/redeliver answers 503.
	Recoveries *recovery.Runner
	// ClientRate is the sustained rate of requests per second of one API
	// client (its calls with an access token, and its token requests),
	// with bursts of ClientBurst; over it the API answers 429 with
	// Retry-After. Zero means DefaultClientRate and a burst of
	// max(DefaultClientBurst, 2×rate); negative turns the limit off. The
	// intake and the admin API are not limited.
	ClientRate  float64
	ClientBurst int
	// Node is this process as GET /admin/cluster shows it on a store of
	// one node (a shared store lists its nodes itself).
	Node store.Node
	// Registerer receives the API's metrics (requests, intake, export
	// jobs); nil registers none.
	Registerer prometheus.Registerer
}

// Hooks are optional collaborators of the API.
type Hooks struct {
	// KeyGen creates a customer's signing key set.
	KeyGen func() (store.KeySet, error)
	// NewKeys creates a next key for each algorithm of a key set, for a
	// rotation.
	NewKeys func(store.KeySet) ([]store.StoredKey, error)
	// MissingKeys creates the key triples of the algorithms a key set
	// lacks (customers created before hookd had them).
	MissingKeys func(store.KeySet) ([]store.KeyTriple, error)
	// JWKS renders a key set as an RFC 7517 document.
	JWKS func(store.KeySet) ([]byte, error)
	// CheckEndpoint validates a listener URL.
	CheckEndpoint func(ctx context.Context, raw string) error
	// KeysRotated tells the dispatcher that a customer's keys were rotated,
	// so that it signs with the new key at once; nil when none runs.
	KeysRotated func(customer uuid.UUID)
	// Notify tells the dispatcher that subscriptions have new due events.
	Notify func(subIDs ...uuid.UUID)
	// InFlight reports whether an attempt of an event is under way
	// (the event is then shown as executing).
	InFlight func(sub uuid.UUID, seq uint64) bool
	// DiskLow reports whether the data directory's free space is below
	// its reserve and why: the intake then refuses events and /readyz
	// answers 503.
	DiskLow func() (low bool, reason string)
	// TestNotification sends a test token to a subscription's endpoint at once.
	TestNotification func(ctx context.Context, sub store.Subscription) (statusCode int, success bool, err error)
}

// Server is hookd's HTTP API.
type Server struct {
	Options
	router    *mux.Router
	filters   *filterCache
	intake    subsCache
	intakeMem *intakeMemory
	ready     atomic.Bool

	limiter   *clientLimiter // nil: no limit
	metrics   *apiMetrics
	templates map[*mux.Route]string // route label of each route

	// replayBudget is the time after which the replay of an export's
	// file starts no further batch; 0: half the API timeout. Tests
	// shorten it.
	replayBudget time.Duration
}

// New builds a Server; call SetReady when its collaborators run.
func New(o Options) *Server {
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.SubscriptionLimit <= 0 {
		o.SubscriptionLimit = DefaultSubscriptionLimit
	}
	if o.APITimeout <= 0 {
		o.APITimeout = DefaultAPITimeout
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxIntakeBody <= 0 {
		o.MaxIntakeBody = DefaultMaxIntakeBody
	}
	if o.MaxEventSize <= 0 {
		o.MaxEventSize = DefaultMaxEventSize
	}
	if o.IntakeMemory <= 0 {
		o.IntakeMemory = DefaultIntakeMemory
	}
	s := &Server{Options: o, router: mux.NewRouter(), filters: newFilterCache(), limiter: newClientLimiter(o.ClientRate, o.ClientBurst)}
	s.intakeMem = newIntakeMemory(o.IntakeMemory)
	s.routes()
	s.metrics = newAPIMetrics(o.Registerer, o.Log)
	s.templates = routeTemplates(s.router)
	s.router.Use(s.routeLabel)
	return s
}

// SetReady sets what /readyz answers.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serveObserved(w, r)
}

// handlerFunc is a handler that returns its error to the one error writer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// customerHandler is a handler for an authenticated customer.
type customerHandler func(w http.ResponseWriter, r *http.Request, customerID uuid.UUID) error

// handle adapts h: it bounds the request by the API timeout, recovers
// panics and writes errors.
func (s *Server) handle(h handlerFunc) http.Handler {
	return s.handleWith(h, true)
}

// handleStream is handle without the API timeout, for streamed downloads.
func (s *Server) handleStream(h handlerFunc) http.Handler {
	return s.handleWith(h, false)
}

func (s *Server) handleWith(h handlerFunc, bounded bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bounded {
			ctx, cancel := context.WithTimeout(r.Context(), s.APITimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
			}
		}()
		if err := h(w, r); err != nil {
			if r.Context().Err() == context.DeadlineExceeded {
				err = problem(http.StatusServiceUnavailable, "timeout", fmt.Sprintf("the request did not finish within %s", s.APITimeout))
			}
			s.writeError(w, r, err)
		}
	})
}

// healthz answers while the process runs.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 once the service accepts work and 503 while it
// starts or stops, while the store cannot be reached, or while the disk
// is below its reserve.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if !s.ready.Load() {
		return problem(http.StatusServiceUnavailable, "not-ready", "hookd is starting or shutting down")
	}
	if err := s.DB.Ping(); err != nil {
		return problem(http.StatusServiceUnavailable, "not-ready", "hookd cannot reach its store: "+err.Error())
	}
	if low, reason := s.diskLow(); low {
		return problem(http.StatusServiceUnavailable, "not-ready", "the intake refuses events: "+reason)
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// diskLow is Hooks.DiskLow, false without it.
func (s *Server) diskLow() (bool, string) {
	if s.Hooks.DiskLow == nil {
		return false, ""
	}
	return s.Hooks.DiskLow()
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil {
			allow = append(allow, m)
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return problem(http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed on "+r.URL.Path)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) error {
	return errNotFound("no route for " + r.URL.Path)
}
