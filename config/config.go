// Package config is the configuration of hookd serve: one Config read
// from flags with HOOKD_* environment fallbacks, validated with an error
// per bad field, and shown redacted in the start-up log.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"hookd/delivery"
	"hookd/diskspace"
	"hookd/envflag"
	"hookd/httpapi"
	"hookd/jobs"
	"hookd/recovery"
	"hookd/store"
	"hookd/wire"
)

// Defaults of the serve configuration. Those of a component are the
// component's own constants.
const (
	defaultListen            = wire.DefaultListen
	defaultData              = wire.DefaultData
	defaultLogFormat         = "console"
	defaultLogLevel          = "info"
	defaultTokenTTL          = httpapi.DefaultTokenTTL
	defaultSubscriptionLimit = httpapi.DefaultSubscriptionLimit
	defaultRetention         = store.DefaultRetention
	defaultJanitorEvery      = jobs.DefaultJanitorInterval
	defaultAttemptTimeout    = delivery.DefaultTimeout
	defaultJitter            = delivery.DefaultJitter
	defaultRetrySchedule     = delivery.DefaultRetrySchedule
	defaultShutdownGrace     = delivery.DefaultGrace
	defaultMaxInFlight       = delivery.DefaultMaxInFlight
	defaultMaxPerEndpoint    = delivery.DefaultMaxPerEndpoint
	defaultExportScope       = string(store.DefaultExportScope)
	defaultExportWriters     = jobs.DefaultExportWriters
	maxExportWriters         = 64
	defaultExportRetryFor    = jobs.DefaultExportRetryFor
	defaultExportLease       = jobs.DefaultExportLease
	minExportLease           = 3 * time.Second
	defaultExportCooldown    = httpapi.DefaultExportCooldown
	defaultExportEncoding    = ""
	defaultClientRate        = httpapi.DefaultClientRate
	defaultClientBurst       = httpapi.DefaultClientBurst
	defaultDiskReserve       = "auto" // diskspace.DefaultReserve
	maxNodeName              = 100    // bytes of --node-name
)

// Config is the whole configuration of hookd serve.
type Config struct {
	Listen            string
	Data              string
	Store             string
	RecoveryRate      float64
	PublicURL         string
	BlobURL           string
	AdminToken        string
	Dev               bool
	LogFormat         string
	LogLevel          string
	TokenTTL          time.Duration
	SubscriptionLimit int
	Retention         time.Duration
	JanitorEvery      time.Duration
	AttemptTimeout    time.Duration
	Jitter            float64
	RetrySchedule     string // comma-separated waits before each attempt, the first normally 0s
	MaxInFlight       int
	MaxPerEndpoint    int
	ExportScope       string
	ExportWriters     int
	ExportRetryFor    time.Duration
	ExportLease       time.Duration
	ExportCooldown    time.Duration
	ExportEncoding    string
	ShutdownGrace     time.Duration
	ClientRate        float64 // requests per second per API client; 0 turns the limit off
	ClientBurst       int
	DiskReserve       string        // free space kept for deliveries: auto, 0 (off) or a size
	MaxEventSize      int           // bytes of one intake event object, compacted
	IntakeMemory      int           // bytes intake requests may hold at once
	AutoDisableAfter  time.Duration // every attempt failing this long disables a subscription; 0 turns it off
	TLSCert           string        // PEM certificate chain of the API's HTTPS; empty: plain HTTP
	TLSKey            string        // PEM private key of TLSCert
	ListenerCAFile    string        // PEM bundle trusted for listener endpoints, besides the system roots
	NodeName          string        // this node's name in the cluster view; empty: hostname:port of the listener
}

const serveUsage = `Usage: hookd serve [flags]

Runs the webhooks service: the API, the intake, delivery, exports and the
janitor, with all state in <data>/hookd.db.

Example:
  hookd serve --dev                      # local work: http and loopback listeners allowed
  hookd serve --listen 0.0.0.0:8080 --public-url https://hooks.example.com \
      --blob-url 's3://my-bucket?region=eu-west-1'
`

// ParseServe reads the configuration from the command line args and,
// for flags not given there, the HOOKD_* variables through getenv. --help
// prints the usage on stderr and returns an error for which
// envflag.IsHelp is true; any other error wraps envflag.ErrUsage. The
// Config is valid when the error is nil.
func ParseServe(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	f := envflag.New("serve", stderr, serveUsage)
	f.String(&c.Listen, "listen", defaultListen, "address to listen on (host:port; port 0 picks a free one)")
	f.String(&c.Data, "data", defaultData, "data directory: the store hookd.db, admin.token and, by default, exports/")
	f.String(&c.Store, "store", "", "where hookd keeps its state: empty for the embedded store <data>/hookd.db, or a postgres:// URL (PostgreSQL 15+; several hookd may share it)")
	f.String(&c.PublicURL, "public-url", "", "base URL in tokens and links (default http://<listen address>)")
	f.String(&c.BlobURL, "blob-url", "", "where export files go: file:///dir, s3://bucket?region=..., mem:// (default file://<data>/exports)")
	f.String(&c.AdminToken, "admin-token", "", "operator token for /admin and the intake (default: generated once into <data>/admin.token)")
	f.Bool(&c.Dev, "dev", false, "development mode: allow http and loopback/private listener endpoints; create a demo client on an empty store")
	f.String(&c.LogFormat, "log-format", defaultLogFormat, "log format: json or console")
	f.String(&c.LogLevel, "log-level", defaultLogLevel, "log level: debug, info, warn or error")
	f.Duration(&c.TokenTTL, "token-ttl", defaultTokenTTL, "lifetime of access tokens")
	f.Int(&c.SubscriptionLimit, "subscription-limit", defaultSubscriptionLimit, "subscriptions per customer")
	f.Duration(&c.Retention, "retention", defaultRetention, "how long events, export jobs and export files are kept")
	f.Duration(&c.JanitorEvery, "janitor-interval", defaultJanitorEvery, "how often the janitor runs")
	f.Duration(&c.AttemptTimeout, "attempt-timeout", defaultAttemptTimeout, "timeout of one delivery attempt")
	f.Float(&c.Jitter, "retry-jitter", defaultJitter, "random extra wait on each retry, as a fraction of the wait (0 to 1)")
	f.String(&c.RetrySchedule, "retry-schedule", defaultRetrySchedule, "waits before each delivery attempt, comma-separated; their number is the number of attempts")
	f.Int(&c.MaxInFlight, "max-in-flight", defaultMaxInFlight, "delivery attempts in flight at once, overall")
	f.Int(&c.MaxPerEndpoint, "max-per-endpoint", defaultMaxPerEndpoint, "delivery attempts in flight at once, per subscription")
	f.String(&c.ExportScope, "export-scope", defaultExportScope, "where only one export may be active at a time: customer or subscription (jobs of different customers never refuse each other; they queue)")
	f.Duration(&c.ExportRetryFor, "export-retry-for", defaultExportRetryFor, "how long an export whose writes fail on the blob store is retried (with backoff) before it fails")
	f.Duration(&c.ExportLease, "export-lease", defaultExportLease, "on a PostgreSQL store, how long a node's claim on the export it writes holds without a renewal (renewed every third of it): a node that dies writing leaves its job to the others within it")
	f.Int(&c.ExportWriters, "export-writers", defaultExportWriters, "export files written at once over all customers, per node on a cluster; other jobs wait their turn in processing")
	f.Duration(&c.ExportCooldown, "export-cooldown", defaultExportCooldown, "time after a completed export before the subscription may export again (0 turns it off)")
	f.String(&c.ExportEncoding, "export-encoding", defaultExportEncoding, "compression of export files unless a job asks otherwise: none, gzip or zstd")
	f.Duration(&c.ShutdownGrace, "shutdown-grace", defaultShutdownGrace, "how long shutdown waits for requests and attempts in flight")
	f.Float(&c.ClientRate, "client-rate", defaultClientRate, "API requests per second per client (its calls and token requests; over it 429); 0 turns the limit off")
	f.Int(&c.ClientBurst, "client-burst", defaultClientBurst, "API requests a client may send at once above --client-rate")
	f.String(&c.DiskReserve, "disk-reserve", defaultDiskReserve, "free space of the data directory's file system below which the intake refuses events (503): a size like 512MiB, 0 (off), or auto (2% of the file system, at least 32MiB); about 2KiB per event waiting for its first attempt is kept free on top of it")
	f.Float(&c.RecoveryRate, "recovery-rate", recovery.DefaultRate, "events per second that all recoveries (redeliveries of many failed events) together requeue at most; 0 sets no bound")
	f.Int(&c.MaxEventSize, "max-event-size", httpapi.DefaultMaxEventSize, "bytes one intake event object may hold, compacted (over it the intake answers 413)")
	f.Int(&c.IntakeMemory, "intake-memory", httpapi.DefaultIntakeMemory, "bytes of memory intake requests may hold at once, estimated as four times their bodies (over it the intake answers 503 with Retry-After)")
	f.Duration(&c.AutoDisableAfter, "auto-disable-after", delivery.DefaultAutoDisableAfter, "disable a subscription whose every delivery attempt has failed for this long (0 turns it off)")
	f.String(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) file: serve the API over HTTPS; read again when it changes or on SIGHUP")
	f.String(&c.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	f.String(&c.ListenerCAFile, "listener-ca-file", "", "PEM bundle of CAs trusted for listener endpoints, besides the system roots")
	f.String(&c.NodeName, "node-name", "", "this node's name in GET /admin/cluster when several hookd share a --store (default <hostname>:<listen port>)")
	if err := f.Parse(args, getenv); err != nil {
		return c, usage(err)
	}
	if f.NArg() > 0 {
		return c, usage(fmt.Errorf("serve takes no arguments, got %q", f.Args()))
	}
	if c.BlobURL == "" {
		abs, err := filepath.Abs(filepath.Join(c.Data, "exports"))
		if err != nil {
			return c, err
		}
		c.BlobURL = "file://" + filepath.ToSlash(abs)
	}
	return c, usage(c.Validate())
}

// usage marks a command line error as envflag.ErrUsage; --help and nil
// stay as they are.
func usage(err error) error {
	if err == nil || envflag.IsHelp(err) {
		return err
	}
	return fmt.Errorf("%w: %v", envflag.ErrUsage, err)
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if c.Listen == "" {
		bad("listen", "must not be empty")
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		bad("listen", "must be host:port, like 127.0.0.1:8080 or :8080 (got %q)", c.Listen)
	}
	if c.Data == "" {
		bad("data", "must not be empty")
	}
	if c.RecoveryRate < 0 {
		bad("recovery-rate", "must be 0 (no bound) or more")
	}
	if c.Store != "" {
		if u, err := url.Parse(c.Store); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("store", "must be empty (the embedded store under --data) or a postgres:// URL")
		}
	}
	if len(c.NodeName) > maxNodeName || strings.IndexFunc(c.NodeName, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		bad("node-name", "must be at most %d bytes of printable characters", maxNodeName)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("public-url", "must be an absolute http(s) URL")
		}
	}
	if u, err := url.Parse(c.BlobURL); err != nil || (u.Scheme != "file" && u.Scheme != "s3" && u.Scheme != "mem") {
		bad("blob-url", "must be a file://, s3:// or mem:// URL")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("admin-token", "must be at least 16 characters")
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("log-format", "must be json or console")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "must be debug, info, warn or error")
	}
	positive := map[string]time.Duration{"token-ttl": c.TokenTTL, "retention": c.Retention, "janitor-interval": c.JanitorEvery, "attempt-timeout": c.AttemptTimeout, "shutdown-grace": c.ShutdownGrace}
	for name, d := range positive {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	if c.ExportCooldown < 0 {
		bad("export-cooldown", "must not be negative")
	}
	if c.AutoDisableAfter < 0 {
		bad("auto-disable-after", "must not be negative (0 turns it off)")
	}
	if c.SubscriptionLimit < 1 {
		bad("subscription-limit", "must be at least 1")
	}
	if c.MaxInFlight < 1 || c.MaxPerEndpoint < 1 {
		bad("max-in-flight", "and --max-per-endpoint must be at least 1")
	}
	if c.ClientRate < 0 {
		bad("client-rate", "must not be negative (0 turns the limit off)")
	}
	if c.ClientBurst < 1 {
		bad("client-burst", "must be at least 1")
	}
	if c.MaxEventSize < 1024 || c.MaxEventSize > httpapi.DefaultMaxIntakeBody {
		bad("max-event-size", "must be between 1024 and %d bytes", httpapi.DefaultMaxIntakeBody)
	}
	if c.IntakeMemory < 1<<20 {
		bad("intake-memory", "must be at least 1048576 bytes (1 MiB)")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert", "and --tls-key must be given together")
	}
	if c.Jitter < 0 || c.Jitter > 1 {
		bad("retry-jitter", "must be between 0 and 1")
	}
	if _, err := ParseRetrySchedule(c.RetrySchedule); err != nil {
		bad("retry-schedule", "%v", err)
	}
	if _, err := diskspace.ParseReserve(c.DiskReserve); err != nil {
		bad("disk-reserve", "%v", err)
	}
	switch c.ExportScope {
	case "customer", "subscription":
	case "appliance":
		bad("export-scope", "appliance is no longer a scope (one customer's export would refuse another's): use customer or subscription; --export-writers bounds the exports written at once")
	default:
		bad("export-scope", "must be customer or subscription")
	}
	if c.ExportRetryFor <= 0 {
		bad("export-retry-for", "must be positive")
	}
	if c.ExportLease < minExportLease {
		bad("export-lease", "must be at least %v", minExportLease)
	}
	if c.ExportWriters < 1 || c.ExportWriters > maxExportWriters {
		bad("export-writers", "must be 1 to %d", maxExportWriters)
	}
	switch c.ExportEncoding {
	case "", "none", "gzip", "zstd":
	default:
		bad("export-encoding", "must be none, gzip or zstd")
	}
	return errors.Join(errs...)
}

// Redacted returns the configuration for the start-up log line, without
// the admin token and the blob URL's credentials.
func (c Config) Redacted() map[string]string {
	blob := c.BlobURL
	if u, err := url.Parse(blob); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		blob = u.String()
	}
	st := redactStore(c.Store)
	return map[string]string{
		"listen": c.Listen, "data": c.Data, "store": st, "publicUrl": c.PublicURL, "blobUrl": blob,
		"adminToken": "REDACTED", "dev": strconv.FormatBool(c.Dev), "logFormat": c.LogFormat, "logLevel": c.LogLevel,
		"tokenTtl": c.TokenTTL.String(), "subscriptionLimit": strconv.Itoa(c.SubscriptionLimit), "shutdownGrace": c.ShutdownGrace.String(),
		"clientRate": strconv.FormatFloat(c.ClientRate, 'g', -1, 64), "clientBurst": strconv.Itoa(c.ClientBurst),
		"maxEventSize": strconv.Itoa(c.MaxEventSize), "intakeMemory": strconv.Itoa(c.IntakeMemory), "retention": c.Retention.String(), "janitorInterval": c.JanitorEvery.String(),
		"attemptTimeout": c.AttemptTimeout.String(), "retryJitter": strconv.FormatFloat(c.Jitter, 'f', -1, 64), "retrySchedule": c.RetrySchedule,
		"maxInFlight": strconv.Itoa(c.MaxInFlight), "maxPerEndpoint": strconv.Itoa(c.MaxPerEndpoint),
		"diskReserve": c.DiskReserve,
		"exportScope": c.ExportScope, "exportWriters": strconv.Itoa(c.ExportWriters), "exportRetryFor": c.ExportRetryFor.String(), "exportLease": c.ExportLease.String(), "exportCooldown": c.ExportCooldown.String(), "exportEncoding": c.ExportEncoding,
		"autoDisableAfter": c.AutoDisableAfter.String(), "recoveryRate": strconv.FormatFloat(c.RecoveryRate, 'g', -1, 64),
		"tlsCert": c.TLSCert, "tlsKey": c.TLSKey, "listenerCaFile": c.ListenerCAFile,
		"nodeName": c.NodeName,
	}
}

// redactStore hides the password of a store URL, in its user part or its
// password parameter, and keeps the rest for the log.
func redactStore(s string) string {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// ParseRetrySchedule parses --retry-schedule: one to 20 comma-separated
// non-negative durations of at most 7 days.
func ParseRetrySchedule(s string) ([]time.Duration, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 20 {
		return nil, errors.New("must list at most 20 waits")
	}
	out := make([]time.Duration, 0, len(parts))
	for _, p := range parts {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d < 0 || d > 7*24*time.Hour {
			return nil, fmt.Errorf("%q is not a wait between 0s and 168h", strings.TrimSpace(p))
		}
		out = append(out, d)
	}
	return out, nil
}
