// Package serve is hookd serve: from one config.Config it opens the store,
// builds the HTTP API and the background components (the delivery
// dispatcher, the exporter, the janitor and the recoveries), starts them in
// order and stops them in reverse order.
//
// Main follows the open, run, close shape: Open starts everything and
// returns once hookd is listening and ready, Run waits for the end of its
// context (a signal) or a failure of the HTTP server, and Close stops what
// Open started, last started first, also after an Open that failed half
// way.
package serve

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hookd/store/bolt"
	"hookd/store/postgres"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"hookd/blobsink"
	"hookd/certfile"
	"hookd/config"
	"hookd/delivery"
	"hookd/diskspace"
	"hookd/httpapi"
	"hookd/jobs"
	"hookd/recovery"
	"hookd/store"
	"hookd/web"
	"hookd/wire"
)

// Timeouts of the HTTP server.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 2 * time.Minute
	writeTimeout      = 30 * time.Minute // export downloads stream for long
	idleTimeout       = 2 * time.Minute
)

// Options are what Main takes besides the configuration.
type Options struct {
	// Version is hookd's version: in the log, the metrics and the
	// User-Agent of deliveries.
	Version string
	// Stdout receives the --dev bootstrap's message.
	Stdout io.Writer
	// Stderr receives the log.
	Stderr io.Writer
	// Getenv, when set, is the process's environment: Open then sets Go's
	// garbage collector, for the whole process, to hookd's defaults where
	// GOGC and GOMEMLIMIT are unset.
	Getenv func(string) string
}

// Main is one hookd serve.
type Main struct {
	cfg  config.Config
	opts Options
	log  zerolog.Logger

	db         store.Store
	node       store.Node       // this process among the nodes sharing the store
	claims     *postgres.Claims // the dispatcher's claims on a shared store; nil on one node's
	metrics    *metricsRegistry
	ln         net.Listener
	baseURL    string // http://<listen address>
	dispatcher *delivery.Dispatcher
	janitor    *jobs.Janitor
	exporter   *jobs.Exporter
	recoveries *recovery.Runner
	api        *httpapi.Server
	space      *diskspace.Monitor
	certs      *certfile.Reloader // nil: plain HTTP
	srv        *http.Server
	serveErr   chan error
	shutdownBy time.Time // the end of the grace period, set when the drain starts

	closers []func() error // what Open started, in start order
}

// New returns a Main for cfg, which must be valid (config.ParseServe
// validates it). Nothing is opened before Open.
func New(cfg config.Config, o Options) *Main {
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	return &Main{cfg: cfg, opts: o, log: newLogger(cfg.LogFormat, cfg.LogLevel, o.Stderr), serveErr: make(chan error, 1)}
}

// URL is the base URL hookd listens on, once Open returned.
func (m *Main) URL() string { return m.baseURL }

// onClose registers f to run at Close, before the closers registered
// earlier.
func (m *Main) onClose(f func() error) { m.closers = append(m.closers, f) }

// Open opens the store, builds every component, starts the background
// ones and serves HTTP; hookd is ready when it returns nil. After an
// error, Close releases what was opened.
func (m *Main) Open(ctx context.Context) error {
	if m.opts.Getenv != nil {
		c := tuneCollector(m.opts.Getenv)
		m.log.Info().Int("gcPercent", c.GCPercent).Int64("memoryLimit", c.MemoryLimit).Strs("setByEnvironment", c.FromEnv).
			Msg("garbage collector set")
	}
	for _, step := range []func(context.Context) error{
		m.openStore,
		m.listen,
		m.build,
		m.join,
		m.devBootstrap,
		m.start,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Run waits until ctx ends (nil) or the HTTP server fails (its error).
func (m *Main) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.serveErr:
		return fmt.Errorf("serve: %w", err)
	}
}

// Close stops what Open started, in reverse order. First hookd reports not
// ready: the listener stays open, so /readyz answers 503 and requests go
// on while the background components drain; the recoveries (a restart ends
// them: posting the same selection again continues), the exporter (a file being
// written is abandoned and its job written again at the next start), the
// janitor and the dispatcher (attempts in flight finish within the grace
// period; those still running then are cut and made again at the next
// start) stop. Then the HTTP server stops taking connections and lets its
// requests finish in what is left of the grace period, and the bucket and
// the store close. It returns the errors of closing the bucket and the
// store. The "stopped" line is logged last.
func (m *Main) Close() error {
	if len(m.closers) > 0 && m.srv != nil {
		m.log.Info().Msg("shutting down")
	}
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		errs = append(errs, m.closers[i]())
	}
	if m.srv != nil {
		m.log.Info().Msg("stopped")
	}
	m.closers = nil
	return errors.Join(errs...)
}

// openStore opens the store (the bolt file under --data, or the
// PostgreSQL database of --store), and reads or creates the admin token.
func (m *Main) openStore(ctx context.Context) error {
	var (
		db  store.Store
		err error
	)
	if m.cfg.Store != "" {
		start := time.Now()
		db, err = postgres.Open(ctx, m.cfg.Store, postgres.Options{})
		if err != nil {
			return fmt.Errorf("--store: %w", err)
		}
		m.log.Info().Dur("took", time.Since(start)).Int("schemaVersion", postgres.SchemaVersion).Msg("connected to PostgreSQL")
	} else {
		start := time.Now()
		bdb, err := bolt.Open(m.cfg.Data, bolt.Options{})
		if err != nil {
			return err
		}
		// Opening reads the file's pages to rebuild bbolt's freelist (see
		// bolt.Open): the time a large store takes to start.
		ev := m.log.Info().Dur("took", time.Since(start)).Str("file", bdb.Path())
		if st, err := os.Stat(bdb.Path()); err == nil {
			ev = ev.Int64("bytes", st.Size())
		}
		ev.Msg("opened the store")
		db = bdb
	}
	m.db = db
	m.onClose(db.Close)
	if m.cfg.AdminToken == "" {
		path := filepath.Join(m.cfg.Data, wire.AdminTokenFile)
		tok, created, err := readOrCreateToken(path, randomSecret)
		if err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
		m.cfg.AdminToken = tok
		if created {
			m.log.Info().Str("file", path).Msg("generated the admin token")
		}
	}
	return nil
}

// listen opens the listener; the public URL defaults to its address.
func (m *Main) listen(context.Context) error {
	_ = os.Remove(filepath.Join(m.cfg.Data, wire.URLFile)) // left by a process that was killed
	ln, err := net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.ln = ln
	m.onClose(func() error {
		if m.srv == nil { // not serving yet: Shutdown closes it otherwise
			_ = ln.Close()
		}
		return nil
	})
	m.baseURL = "http://" + ln.Addr().String()
	if m.cfg.TLSCert != "" {
		certs, err := certfile.New(m.cfg.TLSCert, m.cfg.TLSKey, certfile.Options{OnError: func(err error) {
			m.log.Error().Err(err).Msg("the TLS certificate files do not load; the previous certificate stays in service")
		}})
		if err != nil {
			return err
		}
		m.certs = certs
		m.baseURL = "https://" + ln.Addr().String()
	} else if !m.cfg.Dev {
		m.log.Warn().Msg("serving plain HTTP: client secrets, access tokens and the admin token travel in clear unless a TLS-terminating proxy is in front (see --tls-cert and --public-url)")
	}
	if m.cfg.PublicURL == "" {
		m.cfg.PublicURL = m.baseURL
	}
	m.cfg.PublicURL = strings.TrimRight(m.cfg.PublicURL, "/")
	m.log.Info().Str("version", m.opts.Version).Interface("config", m.cfg.Redacted()).Msg("starting hookd")
	return nil
}

// build creates the delivery client and dispatcher, the bucket, the
// exporter, the janitor, the recovery runner and the API.
func (m *Main) build(ctx context.Context) error {
	cfg, db, log := m.cfg, m.db, m.log
	m.node = m.newNode()
	var err error
	if m.metrics, err = newMetricsRegistry(db, m.opts.Version, m.metricLabels()); err != nil {
		return err
	}
	delays, err := config.ParseRetrySchedule(cfg.RetrySchedule)
	if err != nil {
		return err
	}
	reserve, err := diskspace.ParseReserve(cfg.DiskReserve)
	if err != nil {
		return err
	}
	m.space = diskspace.New(diskspace.Options{Dir: cfg.Data, Reserve: reserve, Pending: db.PendingGrowth,
		Log: log.With().Str("component", "diskspace").Logger(), Registerer: m.metrics})
	userAgent := "hookd/" + m.opts.Version
	clientOpts := delivery.ClientOptions{Timeout: cfg.AttemptTimeout, Dev: cfg.Dev, UserAgent: userAgent}
	if cfg.ListenerCAFile != "" {
		roots, err := certfile.CertPool(cfg.ListenerCAFile)
		if err != nil {
			return fmt.Errorf("--listener-ca-file: %w", err)
		}
		clientOpts.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	client := delivery.NewClient(clientOpts)
	m.onClose(func() error { client.Close(); return nil })
	m.dispatcher = delivery.NewDispatcher(delivery.DispatcherOptions{
		DB:               m.dispatchStore(),
		Client:           client,
		Schedule:         delivery.Schedule{Delays: delays, Jitter: cfg.Jitter},
		Log:              log.With().Str("component", "dispatcher").Logger(),
		PublicURL:        cfg.PublicURL,
		MaxInFlight:      cfg.MaxInFlight,
		MaxPerEndpoint:   cfg.MaxPerEndpoint,
		Grace:            cfg.ShutdownGrace,
		AutoDisableAfter: cfg.AutoDisableAfter,
		Registerer:       m.metrics,
	})
	bucket, err := blobsink.Open(ctx, cfg.BlobURL)
	if err != nil {
		return err
	}
	m.onClose(bucket.Close)
	uploads, err := blobsink.NewUploads(cfg.BlobURL, bucket)
	if err != nil {
		return err
	}
	exportEncoding, err := blobsink.ParseEncoding(cfg.ExportEncoding)
	if err != nil {
		return err
	}
	m.exporter = jobs.NewExporter(jobs.ExporterOptions{
		DB:         db,
		Bucket:     bucket,
		Log:        log.With().Str("component", "exporter").Logger(),
		PublicURL:  cfg.PublicURL,
		Retention:  cfg.Retention,
		Writers:    cfg.ExportWriters,
		RetryFor:   cfg.ExportRetryFor,
		Uploads:    uploads,
		Registerer: m.metrics,
		Shared:     m.exportQueue(),
		Lease:      cfg.ExportLease,
	})
	exportCleaner := &jobs.ExportCleaner{DB: db, Bucket: bucket, Retention: cfg.Retention, Uploads: uploads}
	m.janitor = jobs.NewJanitor(jobs.JanitorOptions{
		Interval:   cfg.JanitorEvery,
		Exclusive:  m.janitorLock(),
		Log:        log.With().Str("component", "janitor").Logger(),
		Registerer: m.metrics,
		Tasks: append([]jobs.Task{
			jobs.ExpiredEventsTask(db, cfg.Retention, 0),
			jobs.DeletedSubscriptionsTask(db, 0),
			jobs.ExpiredTokensTask(db, 0),
			jobs.IntakeIDsTask(db, cfg.Retention, 0),
			jobs.IdempotencyKeysTask(db, 0),
		}, exportCleaner.Tasks()...),
	})

	m.recoveries = recovery.New(recovery.Options{
		DB:     db,
		Notify: m.dispatcher.Notify,
		Log:    log.With().Str("component", "recovery").Logger(),
		Rate:   cfg.RecoveryRate,
		// Recoveries slow down while goroutines wait for a CPU: they
		// yield it to live deliveries (see the recovery package).
		Pressure: recovery.NewSchedLatency().P99,
	})

	m.api = httpapi.New(httpapi.Options{
		DB:                db,
		Log:               log.With().Str("component", "api").Logger(),
		PublicURL:         cfg.PublicURL,
		AdminToken:        cfg.AdminToken,
		Dev:               cfg.Dev,
		TokenTTL:          cfg.TokenTTL,
		SubscriptionLimit: cfg.SubscriptionLimit,
		ClientRate:        apiClientRate(cfg.ClientRate),
		ClientBurst:       cfg.ClientBurst,
		Node:              m.node,
		MaxEventSize:      cfg.MaxEventSize,
		IntakeMemory:      int64(cfg.IntakeMemory),
		Recoveries:        m.recoveries,
		Console:           web.Handler(),
		Metrics:           m.metrics.handler(log.With().Str("component", "metrics").Logger()),
		Registerer:        m.metrics,
		Hooks: httpapi.Hooks{
			KeyGen:           delivery.NewKeySet,
			NewKeys:          delivery.NewStoredKeys,
			MissingKeys:      delivery.MissingKeyTriples,
			JWKS:             delivery.KeySetJWKS,
			CheckEndpoint:    func(ctx context.Context, raw string) error { return delivery.CheckEndpoint(ctx, raw, cfg.Dev, nil) },
			KeysRotated:      m.dispatcher.ForgetKeys,
			Notify:           m.dispatcher.Notify,
			InFlight:         m.dispatcher.InFlight,
			TestNotification: m.dispatcher.Test,
			DiskLow:          m.space.Low,
		},
		DeliveryUserAgent: userAgent,
		Exports: httpapi.ExportOptions{
			Bucket:    bucket,
			Scope:     store.ExportScope(cfg.ExportScope),
			Cooldown:  cfg.ExportCooldown,
			Encoding:  exportEncoding,
			Retention: cfg.Retention,
			Started:   m.exporter.Enqueue,
		},
	})
	if err := m.metrics.Err(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// start starts the background components, then serves HTTP, records the
// URL for the CLI and reports ready.
func (m *Main) start(context.Context) error {
	m.srv = &http.Server{
		Handler:           m.api,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}
	// Close runs the closers last first: the HTTP server's, registered
	// here, runs after the background components have drained.
	urlPath := filepath.Join(m.cfg.Data, wire.URLFile)
	m.onClose(func() error {
		defer os.Remove(urlPath)
		by := m.shutdownBy
		if by.IsZero() {
			by = time.Now().Add(m.cfg.ShutdownGrace)
		}
		ctx, cancel := context.WithDeadline(context.Background(), by)
		defer cancel()
		if err := m.srv.Shutdown(ctx); err != nil {
			m.log.Warn().Err(err).Msg("requests still open at the end of the grace period were cut")
		}
		return nil
	})
	// Background components run until Close, not until a context ends, so
	// that they stop in order while the HTTP server still answers.
	m.space.Start(context.Background())
	m.onClose(func() error { m.space.Close(); return nil })
	m.dispatcher.Start(context.Background())
	m.onClose(func() error { m.dispatcher.Close(); return nil })
	m.janitor.Start(context.Background())
	m.onClose(func() error { m.janitor.Close(); return nil })
	m.exporter.Start(context.Background())
	m.onClose(func() error { m.exporter.Close(); return nil })
	// Recoveries stop first: they feed the dispatcher.
	m.recoveries.Start(context.Background())
	m.onClose(func() error { m.recoveries.Close(); return nil })

	if m.certs != nil {
		// SIGHUP reads the certificate files again at once.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		m.certs.Watch(hup)
		m.onClose(func() error { signal.Stop(hup); m.certs.Close(); return nil })
		m.srv.TLSConfig = m.certs.TLSConfig()
		go func() { m.serveErr <- m.srv.ServeTLS(m.ln, "", "") }()
	} else {
		go func() { m.serveErr <- m.srv.Serve(m.ln) }()
	}
	_ = os.WriteFile(urlPath, []byte(m.baseURL+"\n"), 0o600)
	// The drain starts here: not ready, with the listener still open.
	m.onClose(func() error {
		m.shutdownBy = time.Now().Add(m.cfg.ShutdownGrace)
		m.api.SetReady(false)
		return nil
	})
	m.api.SetReady(true)
	m.log.Info().Str("url", m.baseURL).Msg("hookd is listening")
	return nil
}

// newLogger returns the log of one hookd serve: JSON lines, or text for
// people (in colour on a terminal).
func newLogger(format, level string, w io.Writer) zerolog.Logger {
	if format == "console" {
		f, ok := w.(*os.File)
		color := ok && isatty.IsTerminal(f.Fd())
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !color}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// randomSecret returns 256 random bits, base64url encoded.
func randomSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
