package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"code.dny.dev/ssrf"

	"hookd/store"
)

// Defaults of ClientOptions.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultMaxBodyRead         = 64 << 10
	DefaultUserAgent           = "hookd"
	DefaultMaxIdleConnsPerHost = 64
)

// ContentType is the media type of every notification body.
const ContentType = "application/secevent+jwt"

// Reasons of failed attempts that callers may want to match.
const (
	ReasonTimeout           = "timeout"
	ReasonTooSlow           = "no response within the timeout"
	ReasonAddressNotAllowed = "address not allowed"
	ReasonRedirect          = "redirect not followed"
	ReasonConnectionRefused = "connection refused"
	ReasonConnectionReset   = "connection reset"
	ReasonConnectionClosed  = "connection closed"
	ReasonConnection        = "connection error"
	ReasonTLS               = "tls error"
	ReasonNoHost            = "host does not resolve"
	ReasonDNS               = "dns error"
	ReasonCanceled          = "canceled"
	ReasonInvalidEndpoint   = "invalid endpoint"
	ReasonUnsupportedScheme = "unsupported scheme"
)

// ClientOptions configure a Client. The zero value is usable.
type ClientOptions struct {
	// Timeout bounds one attempt, from dial to the end of the body read;
	// DefaultTimeout when zero.
	Timeout time.Duration
	// Dev turns off the dial-time address check, so loopback and private
	// endpoints can be reached.
	Dev bool
	// UserAgent is sent with every request; DefaultUserAgent when empty.
	UserAgent string
	// MaxBodyRead is how much of a response body is read before the body
	// is closed; DefaultMaxBodyRead when zero.
	MaxBodyRead int64
	// MaxConnsPerHost limits the connections to one host:port; zero means
	// no limit.
	MaxConnsPerHost int
	// TLSConfig is the TLS client configuration; nil uses the system roots.
	TLSConfig *tls.Config
	// Resolver resolves endpoint hosts; nil uses net.DefaultResolver.
	Resolver *net.Resolver
}

// Outcome is what an attempt means for the event.
type Outcome int

// Outcomes of an attempt.
const (
	// Success: the endpoint answered 2xx.
	Success Outcome = iota
	// Retry: the attempt failed and the event is tried again per the
	// schedule (4xx, 5xx, timeout, connection, TLS or address error).
	Retry
	// Fail: the event fails at once (1xx, 3xx, 410 Gone, unusable endpoint URL).
	Fail
)

// String returns "success", "retry" or "fail".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Retry:
		return "retry"
	case Fail:
		return "fail"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result describes one delivery attempt.
type Result struct {
	// Outcome is what the attempt means for the event.
	Outcome Outcome
	// StatusCode is the response status, 0 when there was no response.
	StatusCode int
	// Header holds the response headers, nil when there was no response.
	Header http.Header
	// RetryAfter is the wait asked by Retry-After on a 429 or 503.
	RetryAfter time.Duration
	// Reason is a short human text: "status 500", "timeout",
	// "connection refused", "redirect not followed", "address not allowed"...
	Reason string
	// Code is the reason as a code, ReasonNone on success.
	Code store.ReasonCode
	// Duration is the time the attempt took.
	Duration time.Duration
	// Body is the first MaxKeptBody bytes of the response body, nil when
	// it was empty or there was no response.
	Body []byte
}

// MaxKeptBody is how much of a response body an attempt keeps to show
// with the event (the rest is read, up to MaxBodyRead, and dropped).
const MaxKeptBody = 4 << 10

// Client makes delivery attempts. It is safe for concurrent use; its
// connections are kept alive and shared across attempts.
type Client struct {
	transport *http.Transport
	timeout   time.Duration
	header    http.Header // every request's headers, shared: nothing writes to them
	maxBody   int64
}

// NewClient returns a Client. Unless o.Dev, every dial is checked after
// name resolution and refused when the address is not public (loopback,
// private, link-local, CGNAT, multicast, unique-local, metadata...), which
// also defeats DNS rebinding.
func NewClient(o ClientOptions) *Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.MaxBodyRead <= 0 {
		o.MaxBodyRead = DefaultMaxBodyRead
	}
	dialer := &net.Dialer{
		Timeout:   o.Timeout,
		KeepAlive: 30 * time.Second,
		Resolver:  o.Resolver,
	}
	if !o.Dev {
		dialer.Control = ssrf.New(ssrf.WithAnyPort()).Safe
	}
	var tlsConfig *tls.Config
	if o.TLSConfig != nil {
		tlsConfig = o.TLSConfig.Clone()
	}
	transport := &http.Transport{
		// No proxy: a proxy would dial the endpoint past the address check.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConfig,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    DefaultMaxIdleConnsPerHost,
		MaxConnsPerHost:        o.MaxConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    o.Timeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &Client{
		transport: transport,
		timeout:   o.Timeout,
		header: http.Header{
			"Content-Type": {ContentType},
			"Accept":       {"*/*"},
			"User-Agent":   {o.UserAgent},
		},
		maxBody: o.MaxBodyRead,
	}
}

// Close closes the idle connections. Attempts may still be made after it.
func (c *Client) Close() {
	c.transport.CloseIdleConnections()
}

// Attempt POSTs the token jws to endpoint once and reports the outcome:
// 2xx is Success; 1xx, 3xx (redirects are never followed) and 410 Gone are Fail;
// 4xx, 5xx, a timeout, a connection, TLS or address error are Retry. At
// most MaxBodyRead bytes of the response body are read. The attempt is
// bounded by the Client's timeout and by ctx.
func (c *Client) Attempt(ctx context.Context, endpoint, jws string) Result {
	start := time.Now()
	res := c.attempt(ctx, endpoint, jws)
	res.Duration = time.Since(start)
	return res
}

func (c *Client) attempt(ctx context.Context, endpoint, jws string) Result {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// Whether the request went out tells a listener that is slow to answer
	// (response-too-slow) from one that cannot be reached in time (timeout).
	// HTTP/2 writes on the connection's goroutine: the flag is atomic.
	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) }})
	req, err := http.NewRequestWithContext(actx, http.MethodPost, endpoint, strings.NewReader(jws))
	if err != nil {
		return Result{Outcome: Fail, Reason: ReasonInvalidEndpoint, Code: store.ReasonConnect}
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return Result{Outcome: Fail, Reason: ReasonUnsupportedScheme, Code: store.ReasonConnect}
	}
	// One map for every request: a RoundTripper does not modify the
	// request, so the transport only reads it.
	req.Header = c.header

	// The transport directly: redirects are never followed, so
	// http.Client would add only its redirect bookkeeping.
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		reason, code := errorReason(ctx, err, wrote.Load())
		return Result{Outcome: Retry, Reason: reason, Code: code}
	}
	defer resp.Body.Close()

	res := Result{StatusCode: resp.StatusCode, Header: resp.Header}
	switch code := resp.StatusCode; {
	case code < 200:
		// 101 Switching Protocols hands over the connection: do not read.
		res.Outcome, res.Reason, res.Code = Fail, statusReason(code), store.ReasonStatus1xx
		return res
	case code < 300:
		res.Outcome, res.Reason = Success, statusReason(code)
	case code < 400:
		res.Outcome, res.Reason, res.Code = Fail, ReasonRedirect, store.ReasonRedirect
	case code == http.StatusGone:
		res.Outcome, res.Reason, res.Code = Fail, statusReason(code), store.ReasonEndpointGone
	default:
		res.Outcome, res.Reason, res.Code = Retry, statusReason(code), store.ReasonStatus4xx
		if code >= 500 {
			res.Code = store.ReasonStatus5xx
		}
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
	}
	// The status decides the outcome; the body's first MaxKeptBody bytes
	// are kept to show with the event, and the rest is read, bounded, only
	// so that a short body leaves the connection reusable. A response
	// known to be empty (204, Content-Length: 0) is not read.
	if resp.ContentLength == 0 {
		return res
	}
	res.Body = readKept(resp.Body, min(MaxKeptBody, c.maxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, c.maxBody-int64(len(res.Body))))
	return res
}

// readKept reads up to n bytes of r; nil when r is empty at once. A read
// error keeps what came before it.
func readKept(r io.Reader, n int64) []byte {
	var first [512]byte // most bodies are short: no allocation until one is not empty
	k, _ := io.ReadFull(r, first[:min(n, int64(len(first)))])
	if k == 0 {
		return nil
	}
	buf := append([]byte(nil), first[:k]...)
	if int64(k) < min(n, int64(len(first))) {
		return buf
	}
	rest, _ := io.ReadAll(io.LimitReader(r, n-int64(k)))
	return append(buf, rest...)
}

func statusReason(code int) string {
	return "status " + strconv.Itoa(code)
}

// errorReason turns a failed request into a short reason and its code;
// wrote tells whether the request had been sent.
func errorReason(parent context.Context, err error, wrote bool) (string, store.ReasonCode) {
	var (
		dnsErr     *net.DNSError
		netErr     net.Error
		certErr    *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, ssrf.ErrProhibitedIP), errors.Is(err, ssrf.ErrProhibitedPort),
		errors.Is(err, ssrf.ErrProhibitedNetwork), errors.Is(err, ssrf.ErrInvalidHostPort):
		return ReasonAddressNotAllowed, store.ReasonBlockedAddress
	case parent.Err() != nil && !errors.Is(parent.Err(), context.DeadlineExceeded):
		return ReasonCanceled, store.ReasonConnect
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		if wrote {
			return ReasonTooSlow, store.ReasonResponseTooSlow
		}
		return ReasonTimeout, store.ReasonTimeout
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return ReasonNoHost, store.ReasonDNS
		}
		return ReasonDNS, store.ReasonDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonConnectionRefused, store.ReasonConnect
	case errors.Is(err, syscall.ECONNRESET):
		return ReasonConnectionReset, store.ReasonConnect
	case errors.As(err, &certErr), errors.As(err, &recordErr), errors.As(err, &alertErr),
		errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr),
		strings.Contains(err.Error(), "tls: "), strings.Contains(err.Error(), "HTTP response to HTTPS client"):
		return ReasonTLS, store.ReasonTLS
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonConnectionClosed, store.ReasonConnect
	}
	return ReasonConnection, store.ReasonConnect
}
