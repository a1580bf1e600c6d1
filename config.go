package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Defaults of the serve configuration.
const (
	defaultListen            = "127.0.0.1:8080"
	defaultData              = "./data"
	defaultLogFormat         = "console"
	defaultLogLevel          = "info"
	defaultTokenTTL          = time.Hour
	defaultSubscriptionLimit = 100
	defaultRetention         = 7 * 24 * time.Hour
	defaultJanitorEvery      = 5 * time.Minute
	defaultAttemptTimeout    = 10 * time.Second
	defaultJitter            = 0.10
	defaultRetrySchedule     = "0s,3s,30s,5m,1h,24h"
	defaultShutdownGrace     = 15 * time.Second
	defaultMaxInFlight       = 512
	defaultMaxPerEndpoint    = 32
	defaultExportScope       = "appliance"
	defaultExportCooldown    = 24 * time.Hour
	defaultExportEncoding    = ""
	defaultClientRate        = 100.0
	defaultClientBurst       = 200
)

// Config is the whole configuration of hookd serve.
type Config struct {
	Listen            string
	Data              string
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
	ExportCooldown    time.Duration
	ExportEncoding    string
	ShutdownGrace     time.Duration
	ClientRate        float64 // requests per second per API client; 0 turns the limit off
	ClientBurst       int
	TLSCert           string // PEM certificate chain of the API's HTTPS; empty: plain HTTP
	TLSKey            string // PEM private key of TLSCert
	ListenerCAFile    string // PEM bundle trusted for listener endpoints, besides the system roots
}

// envFlags is a FlagSet whose flags fall back to HOOKD_* environment variables.
type envFlags struct {
	*flag.FlagSet
	env map[string]string // flag name -> variable
}

func newFlags(name string, stderr io.Writer, usage string) *envFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &envFlags{FlagSet: fs, env: map[string]string{}}
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fmt.Fprintln(stderr, "\nFlags (each also read from the environment variable shown):")
		fs.VisitAll(func(fl *flag.Flag) {
			def := ""
			if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" {
				def = " (default " + fl.DefValue + ")"
			}
			fmt.Fprintf(stderr, "  --%s  [%s]\n      %s%s\n", fl.Name, f.env[fl.Name], fl.Usage, def)
		})
	}
	return f
}

func envName(flagName string) string {
	return "HOOKD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *envFlags) String(p *string, name, def, usage string) {
	f.env[name] = envName(name)
	f.StringVar(p, name, def, usage)
}

func (f *envFlags) Bool(p *bool, name string, def bool, usage string) {
	f.env[name] = envName(name)
	f.BoolVar(p, name, def, usage)
}

func (f *envFlags) Int(p *int, name string, def int, usage string) {
	f.env[name] = envName(name)
	f.IntVar(p, name, def, usage)
}

func (f *envFlags) Float(p *float64, name string, def float64, usage string) {
	f.env[name] = envName(name)
	f.Float64Var(p, name, def, usage)
}

func (f *envFlags) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	f.env[name] = envName(name)
	f.DurationVar(p, name, def, usage)
}

// parse applies environment values for flags not given on the command line,
// then the command line.
func (f *envFlags) parse(args []string, getenv func(string) string) error {
	if err := f.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var errs []error
	f.VisitAll(func(fl *flag.Flag) {
		if given[fl.Name] {
			return
		}
		if v := getenv(f.env[fl.Name]); v != "" {
			if err := fl.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", f.env[fl.Name], v, err))
			}
		}
	})
	return errors.Join(errs...)
}

const serveUsage = `Usage: hookd serve [flags]

Runs the webhooks service: the API, the intake, delivery, exports and the
janitor, with all state in <data>/hookd.db.

Example:
  hookd serve --dev                      # local work: http and loopback listeners allowed
  hookd serve --listen 0.0.0.0:8080 --public-url https://hooks.example.com \
      --blob-url 's3://my-bucket?region=eu-west-1'
`

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	f := newFlags("serve", stderr, serveUsage)
	f.String(&c.Listen, "listen", defaultListen, "address to listen on (host:port; port 0 picks a free one)")
	f.String(&c.Data, "data", defaultData, "data directory: the store hookd.db, admin.token and, by default, exports/")
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
	f.String(&c.ExportScope, "export-scope", defaultExportScope, "where only one export may be active at a time: appliance, customer or subscription")
	f.Duration(&c.ExportCooldown, "export-cooldown", defaultExportCooldown, "time after a completed export before the subscription may export again (0 turns it off)")
	f.String(&c.ExportEncoding, "export-encoding", defaultExportEncoding, "compression of export files unless a job asks otherwise: none, gzip or zstd")
	f.Duration(&c.ShutdownGrace, "shutdown-grace", defaultShutdownGrace, "how long shutdown waits for requests and attempts in flight")
	f.Float(&c.ClientRate, "client-rate", defaultClientRate, "API requests per second per client (its calls and token requests; over it 429); 0 turns the limit off")
	f.Int(&c.ClientBurst, "client-burst", defaultClientBurst, "API requests a client may send at once above --client-rate")
	f.String(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) file: serve the API over HTTPS; read again when it changes or on SIGHUP")
	f.String(&c.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	f.String(&c.ListenerCAFile, "listener-ca-file", "", "PEM bundle of CAs trusted for listener endpoints, besides the system roots")
	if err := f.parse(args, getenv); err != nil {
		return c, err
	}
	if f.NArg() > 0 {
		return c, fmt.Errorf("serve takes no arguments, got %q", f.Args())
	}
	if c.BlobURL == "" {
		abs, err := filepath.Abs(filepath.Join(c.Data, "exports"))
		if err != nil {
			return c, err
		}
		c.BlobURL = "file://" + filepath.ToSlash(abs)
	}
	return c, c.validate()
}

// validate reports every invalid field at once.
func (c Config) validate() error {
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
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert", "and --tls-key must be given together")
	}
	if c.Jitter < 0 || c.Jitter > 1 {
		bad("retry-jitter", "must be between 0 and 1")
	}
	if _, err := parseRetrySchedule(c.RetrySchedule); err != nil {
		bad("retry-schedule", "%v", err)
	}
	switch c.ExportScope {
	case "appliance", "customer", "subscription":
	default:
		bad("export-scope", "must be appliance, customer or subscription")
	}
	switch c.ExportEncoding {
	case "", "none", "gzip", "zstd":
	default:
		bad("export-encoding", "must be none, gzip or zstd")
	}
	return errors.Join(errs...)
}

// redacted returns the configuration for the start-up log line.
func (c Config) redacted() map[string]string {
	blob := c.BlobURL
	if u, err := url.Parse(blob); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		blob = u.String()
	}
	return map[string]string{
		"listen": c.Listen, "data": c.Data, "publicUrl": c.PublicURL, "blobUrl": blob,
		"adminToken": "REDACTED", "dev": strconv.FormatBool(c.Dev), "logFormat": c.LogFormat, "logLevel": c.LogLevel,
		"tokenTtl": c.TokenTTL.String(), "subscriptionLimit": strconv.Itoa(c.SubscriptionLimit), "shutdownGrace": c.ShutdownGrace.String(),
		"clientRate": strconv.FormatFloat(c.ClientRate, 'g', -1, 64), "clientBurst": strconv.Itoa(c.ClientBurst),
		"retention": c.Retention.String(), "janitorInterval": c.JanitorEvery.String(),
		"attemptTimeout": c.AttemptTimeout.String(), "retryJitter": strconv.FormatFloat(c.Jitter, 'f', -1, 64), "retrySchedule": c.RetrySchedule,
		"maxInFlight": strconv.Itoa(c.MaxInFlight), "maxPerEndpoint": strconv.Itoa(c.MaxPerEndpoint),
		"exportScope": c.ExportScope, "exportCooldown": c.ExportCooldown.String(), "exportEncoding": c.ExportEncoding,
		"tlsCert": c.TLSCert, "tlsKey": c.TLSKey, "listenerCaFile": c.ListenerCAFile,
	}
}

// parseRetrySchedule parses --retry-schedule: one to 20 comma-separated
// non-negative durations of at most 7 days.
func parseRetrySchedule(s string) ([]time.Duration, error) {
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

// readOrCreateToken returns the admin token kept in path, creating it (mode
// 0600) when missing.
func readOrCreateToken(path string, generate func() (string, error)) (string, bool, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, false, nil
		}
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	t, err := generate()
	if err != nil {
		return "", false, err
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return t, true, nil
}

// apiClientRate is the API's ClientRate for --client-rate: 0 (off) is
// negative there, where 0 means the default.
func apiClientRate(perSecond float64) float64 {
	if perSecond == 0 {
		return -1
	}
	return perSecond
}
