// Command hookd is a single-binary webhooks service compatible with the
// Identity Cloud "Webhooks v3" API: customers subscribe listener endpoints
// to entity events, hookd signs each notification as a Security Event Token
// and delivers it with retries, keeps every event for seven days, and exports
// failed events as NDJSON files to a local directory or S3.
//
// main wires the packages: it reads the configuration, starts the store, the
// HTTP server and the background components, and stops them in reverse
// order on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"hookd/blobsink"
	"hookd/certfile"
	"hookd/delivery"
	"hookd/httpapi"
	"hookd/jobs"
	"hookd/store"
	"hookd/web"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the default handling returns: a second one
	// ends the process at once, without waiting for the graceful shutdown.
	go func() { <-ctx.Done(); stop() }()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, errUsage) {
		if err != errUsage {
			fmt.Fprintln(os.Stderr, "hookd:", err)
		}
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookd:", err)
		os.Exit(1)
	}
}

// errUsage reports a command line that could not be parsed; the usage was printed.
var errUsage = errors.New("usage")

const mainUsage = `hookd: a webhooks service (Identity Cloud Webhooks v3 compatible).

Usage: hookd <command> [flags]

Commands:
  serve      run the service
  client     create, list and revoke customers' API clients
  keys       rotate a customer's signing keys
  publish    send an NDJSON file of events to the intake
  backup     write a consistent copy of the store of a running hookd
  export     download an export file and verify its ETag
  version    print the version

Run 'hookd <command> --help' for a command's flags and an example.
`

// run is the whole program; main only supplies the process's environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "client":
		return runClient(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, getenv, stdout, stderr)
	case "publish":
		return runPublish(ctx, rest, getenv, stdout, stderr)
	case "backup":
		return runBackup(ctx, rest, getenv, stdout, stderr)
	case "export":
		return runExport(ctx, rest, getenv, stdout, stderr)
	case "version", "--version":
		return runVersion(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, mainUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "hookd: unknown command %q\n\n%s", cmd, mainUsage)
		return errUsage
	}
}

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

// urlFile is where a running server records its base URL, so that CLI
// commands on the same data directory find it.
const urlFile = "hookd.url"

// adminTokenFile holds the generated admin token.
const adminTokenFile = "admin.token"

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv, stderr)
	if err != nil {
		if isHelp(err) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	log := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)

	db, err := store.Open(cfg.Data, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	metrics, err := newMetricsRegistry(db, version)
	if err != nil {
		return err
	}

	if cfg.AdminToken == "" {
		tok, created, err := readOrCreateToken(filepath.Join(cfg.Data, adminTokenFile), randomSecret)
		if err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
		cfg.AdminToken = tok
		if created {
			log.Info().Str("file", filepath.Join(cfg.Data, adminTokenFile)).Msg("generated the admin token")
		}
	}

	urlPath := filepath.Join(cfg.Data, urlFile)
	_ = os.Remove(urlPath) // left by a process that was killed
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	baseURL := "http://" + ln.Addr().String()
	var certs *certfile.Reloader // nil: plain HTTP
	if cfg.TLSCert != "" {
		certs, err = certfile.New(cfg.TLSCert, cfg.TLSKey, certfile.Options{OnError: func(err error) {
			log.Error().Err(err).Msg("the TLS certificate files do not load; the previous certificate stays in service")
		}})
		if err != nil {
			ln.Close()
			return err
		}
		baseURL = "https://" + ln.Addr().String()
	} else if !cfg.Dev {
		log.Warn().Msg("serving plain HTTP: client secrets, access tokens and the admin token travel in clear unless a TLS-terminating proxy is in front (see --tls-cert and --public-url)")
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = baseURL
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	log.Info().Str("version", version).Interface("config", cfg.redacted()).Msg("starting hookd")

	delays, err := parseRetrySchedule(cfg.RetrySchedule)
	if err != nil {
		return err
	}
	clientOpts := delivery.ClientOptions{Timeout: cfg.AttemptTimeout, Dev: cfg.Dev, UserAgent: "hookd/" + version}
	if cfg.ListenerCAFile != "" {
		roots, err := certfile.CertPool(cfg.ListenerCAFile)
		if err != nil {
			return fmt.Errorf("--listener-ca-file: %w", err)
		}
		clientOpts.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	client := delivery.NewClient(clientOpts)
	defer client.Close()
	dispatcher := delivery.NewDispatcher(delivery.DispatcherOptions{
		DB:             db,
		Client:         client,
		Schedule:       delivery.Schedule{Delays: delays, Jitter: cfg.Jitter},
		Log:            log.With().Str("component", "dispatcher").Logger(),
		PublicURL:      cfg.PublicURL,
		MaxInFlight:    cfg.MaxInFlight,
		MaxPerEndpoint: cfg.MaxPerEndpoint,
		Grace:          cfg.ShutdownGrace,
		Registerer:     metrics,
	})
	bucket, err := blobsink.Open(ctx, cfg.BlobURL)
	if err != nil {
		return err
	}
	defer bucket.Close()
	uploads, err := blobsink.NewUploads(cfg.BlobURL, bucket)
	if err != nil {
		return err
	}
	exportEncoding, err := blobsink.ParseEncoding(cfg.ExportEncoding)
	if err != nil {
		return err
	}
	exporter := jobs.NewExporter(jobs.ExporterOptions{
		DB:         db,
		Bucket:     bucket,
		Log:        log.With().Str("component", "exporter").Logger(),
		PublicURL:  cfg.PublicURL,
		Retention:  cfg.Retention,
		Registerer: metrics,
	})
	exportCleaner := &jobs.ExportCleaner{DB: db, Bucket: bucket, Retention: cfg.Retention, Uploads: uploads}
	janitor := jobs.NewJanitor(jobs.JanitorOptions{
		Interval:   cfg.JanitorEvery,
		Log:        log.With().Str("component", "janitor").Logger(),
		Registerer: metrics,
		Tasks: append([]jobs.Task{
			jobs.ExpiredEventsTask(db, cfg.Retention, 0),
			jobs.DeletedSubscriptionsTask(db, 0),
			jobs.ExpiredTokensTask(db, 0),
		}, exportCleaner.Tasks()...),
	})

	api := httpapi.New(httpapi.Options{
		DB:                db,
		Log:               log.With().Str("component", "api").Logger(),
		PublicURL:         cfg.PublicURL,
		AdminToken:        cfg.AdminToken,
		Dev:               cfg.Dev,
		TokenTTL:          cfg.TokenTTL,
		SubscriptionLimit: cfg.SubscriptionLimit,
		ClientRate:        apiClientRate(cfg.ClientRate),
		ClientBurst:       cfg.ClientBurst,
		Console:           web.Handler(),
		Metrics:           metrics.handler(log.With().Str("component", "metrics").Logger()),
		Registerer:        metrics,
		Hooks: httpapi.Hooks{
			KeyGen:           newKeySet,
			NewKey:           newStoredKey,
			JWKS:             jwksOf,
			CheckEndpoint:    func(ctx context.Context, raw string) error { return delivery.CheckEndpoint(ctx, raw, cfg.Dev, nil) },
			Notify:           dispatcher.Notify,
			InFlight:         dispatcher.InFlight,
			TestNotification: dispatcher.Test,
		},
		DeliveryUserAgent: "hookd/" + version,
		Exports: httpapi.ExportOptions{
			Bucket:    bucket,
			Scope:     store.ExportScope(cfg.ExportScope),
			Cooldown:  cfg.ExportCooldown,
			Encoding:  exportEncoding,
			Retention: cfg.Retention,
			Started:   exporter.Enqueue,
		},
	})
	if err := metrics.Err(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	if cfg.Dev {
		if err := devBootstrap(db, cfg, baseURL, stdout); err != nil {
			return err
		}
	}

	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      30 * time.Minute, // export downloads stream for long
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	// Background components stop after the HTTP server, in reverse order:
	// the exporter (a file being written is abandoned and its job written
	// again at the next start), the janitor, then the dispatcher (it lets
	// attempts in flight finish), then the bucket and the store.
	dispatcher.Start(context.Background())
	defer dispatcher.Close()
	janitor.Start(context.Background())
	defer janitor.Close()
	exporter.Start(context.Background())
	defer exporter.Close()

	serveErr := make(chan error, 1)
	if certs != nil {
		// SIGHUP reads the certificate files again at once.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		certs.Watch(hup)
		defer certs.Close()
		srv.TLSConfig = certs.TLSConfig()
		go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	_ = os.WriteFile(urlPath, []byte(baseURL+"\n"), 0o600)
	defer os.Remove(urlPath)
	api.SetReady(true)
	log.Info().Str("url", baseURL).Msg("hookd is listening")

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	log.Info().Msg("shutting down")
	api.SetReady(false)
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn().Err(err).Msg("requests still open at the end of the grace period were cut")
	}
	log.Info().Msg("stopped")
	return nil
}

// randomSecret returns 256 random bits, base64url encoded.
func randomSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func newStoredKey() (store.StoredKey, error) {
	k, err := delivery.NewSigningKey()
	if err != nil {
		return store.StoredKey{}, err
	}
	der, err := delivery.MarshalKey(k)
	if err != nil {
		return store.StoredKey{}, err
	}
	return store.StoredKey{ID: k.ID, DER: der}, nil
}

func newKeySet() (store.KeySet, error) {
	var ks store.KeySet
	for _, k := range []*store.StoredKey{&ks.Previous, &ks.Current, &ks.Next} {
		var err error
		if *k, err = newStoredKey(); err != nil {
			return store.KeySet{}, err
		}
	}
	return ks, nil
}

func jwksOf(ks store.KeySet) ([]byte, error) {
	var pubs []*rsa.PublicKey
	for _, k := range ks.Keys() {
		sk, err := delivery.ParseKey(k.DER)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, &sk.Private.PublicKey)
	}
	return delivery.JWKS(pubs...)
}

// devCustomer is the demo customer created by serve --dev on an empty store.
var devCustomer = uuid.MustParse("00000000-0000-4000-8000-000000000001")

// devBootstrap creates a demo customer and client on an empty store and
// prints how to get a token.
func devBootstrap(db *store.DB, cfg Config, baseURL string, stdout io.Writer) error {
	customers, err := db.Customers()
	if err != nil || len(customers) > 0 {
		return err
	}
	secret, err := randomSecret()
	if err != nil {
		return err
	}
	cl, err := db.CreateClient(devCustomer, uuid.New(), store.HashSecret(secret), newKeySet)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `
hookd --dev created a demo customer and client (shown once):
  customer id:   %[1]s
  client id:     %[2]s
  client secret: %[3]s

Get a token:
  curl -s -u '%[2]s:%[3]s' -d grant_type=client_credentials -d 'scope=*:webhooks/**' \
    %[4]s/%[1]s/login/token

Console: %[4]s/console/?customer=%[1]s

`, devCustomer, cl.ID, secret, baseURL)
	return nil
}
