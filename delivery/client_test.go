package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// devClient returns a Dev client (loopback allowed) closed at cleanup.
func devClient(t *testing.T, o ClientOptions) *Client {
	t.Helper()
	o.Dev = true
	c := NewClient(o)
	t.Cleanup(c.Close)
	return c
}

// newServer starts an httptest server with h, closed at cleanup.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newHangingServer starts a server whose handler reads the request, then
// writes prefix (if any) and blocks until the client goes away or the test
// ends.
func newHangingServer(t *testing.T, prefix string) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if prefix != "" {
			io.WriteString(w, prefix)
			http.NewResponseController(w).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv
}

func checkResult(t *testing.T, got Result, outcome Outcome, status int, reason string) {
	t.Helper()
	if got.Outcome != outcome {
		t.Errorf("Outcome: got %v, want %v (reason %q)", got.Outcome, outcome, got.Reason)
	}
	if got.StatusCode != status {
		t.Errorf("StatusCode: got %d, want %d", got.StatusCode, status)
	}
	if got.Reason != reason {
		t.Errorf("Reason: got %q, want %q", got.Reason, reason)
	}
	if got.Duration <= 0 {
		t.Errorf("Duration: got %v, want > 0", got.Duration)
	}
}

func TestAttemptRequest(t *testing.T) {
	type seen struct {
		method, path, contentType, accept, userAgent, encoding, body string
	}
	reqs := make(chan seen, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		reqs <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), r.Header.Get("Accept"),
			r.Header.Get("User-Agent"), r.Header.Get("Accept-Encoding"), string(body)}
		w.Header().Set("X-Listener", "yes")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "thanks")
	})
	c := devClient(t, ClientOptions{UserAgent: "hookd/1.2.3"})
	res := c.Attempt(t.Context(), srv.URL+"/hooks?x=1", "a.b.c")
	checkResult(t, res, Success, http.StatusAccepted, "status 202")
	if got := res.Header.Get("X-Listener"); got != "yes" {
		t.Errorf("response header: got %q, want %q", got, "yes")
	}
	want := seen{"POST", "/hooks?x=1", "application/secevent+jwt", "*/*", "hookd/1.2.3", "", "a.b.c"}
	if got := <-reqs; got != want {
		t.Errorf("request: got %+v, want %+v", got, want)
	}

	// The default User-Agent.
	res = devClient(t, ClientOptions{}).Attempt(t.Context(), srv.URL, "x")
	if got := <-reqs; got.userAgent != "hookd" || res.Outcome != Success {
		t.Errorf("default: got User-Agent %q, outcome %v, want %q, success", got.userAgent, res.Outcome, "hookd")
	}
}

func TestAttemptStatuses(t *testing.T) {
	var redirected atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) { redirected.Store(true) })
	srv := newServer(t, mux.ServeHTTP)
	handlers := 0
	// status registers a handler answering code with the header pairs and
	// returns its URL.
	status := func(code int, header ...string) string {
		handlers++
		path := "/h" + strconv.Itoa(handlers)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.WriteHeader(code)
		})
		return srv.URL + path
	}
	future := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)

	tests := []struct {
		name       string
		url        string
		outcome    Outcome
		status     int
		reason     string
		retryAfter time.Duration // exact, or at least minRetry when set
		minRetry   time.Duration
	}{
		{name: "200", url: status(200), outcome: Success, status: 200, reason: "status 200"},
		{name: "204", url: status(204), outcome: Success, status: 204, reason: "status 204"},
		{name: "301", url: status(301, "Location", "/target"), outcome: Fail, status: 301, reason: "redirect not followed"},
		{name: "302", url: status(302, "Location", "/target"), outcome: Fail, status: 302, reason: "redirect not followed"},
		{name: "307", url: status(307, "Location", "/target"), outcome: Fail, status: 307, reason: "redirect not followed"},
		{name: "304", url: status(304), outcome: Fail, status: 304, reason: "redirect not followed"},
		{name: "400", url: status(400), outcome: Retry, status: 400, reason: "status 400"},
		{name: "404 ignores Retry-After", url: status(404, "Retry-After", "60"), outcome: Retry, status: 404, reason: "status 404"},
		{name: "410", url: status(410), outcome: Fail, status: 410, reason: "status 410"},
		{name: "429 without Retry-After", url: status(429), outcome: Retry, status: 429, reason: "status 429"},
		{name: "429 Retry-After seconds", url: status(429, "Retry-After", "120"), outcome: Retry, status: 429, reason: "status 429", retryAfter: 120 * time.Second},
		{name: "429 Retry-After too long", url: status(429, "Retry-After", "999999"), outcome: Retry, status: 429, reason: "status 429", retryAfter: 24 * time.Hour},
		{name: "503 Retry-After date", url: status(503, "Retry-After", future), outcome: Retry, status: 503, reason: "status 503", minRetry: 100 * time.Second},
		{name: "500", url: status(500, "Retry-After", "60"), outcome: Retry, status: 500, reason: "status 500"},
		{name: "502", url: status(502), outcome: Retry, status: 502, reason: "status 502"},
	}
	c := devClient(t, ClientOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.Attempt(t.Context(), tt.url, "tok")
			checkResult(t, res, tt.outcome, tt.status, tt.reason)
			if res.Header == nil {
				t.Errorf("Header: got nil, want the response headers")
			}
			switch {
			case tt.minRetry > 0:
				if res.RetryAfter < tt.minRetry || res.RetryAfter > 2*time.Minute {
					t.Errorf("RetryAfter: got %v, want within [%v, 2m]", res.RetryAfter, tt.minRetry)
				}
			case res.RetryAfter != tt.retryAfter:
				t.Errorf("RetryAfter: got %v, want %v", res.RetryAfter, tt.retryAfter)
			}
		})
	}
	if redirected.Load() {
		t.Errorf("a redirect was followed")
	}
}

func TestAttemptInformational(t *testing.T) {
	// A 101 answer to a plain POST: the listener switched protocols, which
	// is not an acknowledgement. The connection is left open.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: hookd-test\r\n\r\n")
		buf.Flush()
		<-release
	})
	c := devClient(t, ClientOptions{Timeout: 5 * time.Second})
	res := c.Attempt(t.Context(), srv.URL, "tok")
	checkResult(t, res, Fail, 101, "status 101")
	if res.Duration > 4*time.Second {
		t.Errorf("Duration: got %v, want well under the timeout (the body is not read)", res.Duration)
	}
}

func TestAttemptTimeout(t *testing.T) {
	srv := newHangingServer(t, "")
	c := devClient(t, ClientOptions{Timeout: 200 * time.Millisecond})
	res := c.Attempt(t.Context(), srv.URL, "tok")
	checkResult(t, res, Retry, 0, "no response within the timeout")
	if res.Header != nil {
		t.Errorf("Header: got %v, want nil", res.Header)
	}
	if res.Duration < 200*time.Millisecond || res.Duration > 5*time.Second {
		t.Errorf("Duration: got %v, want about 200ms", res.Duration)
	}
}

func TestAttemptCanceled(t *testing.T) {
	srv := newHangingServer(t, "")
	c := devClient(t, ClientOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	res := c.Attempt(ctx, srv.URL, "tok")
	checkResult(t, res, Retry, 0, "canceled")
}

func TestAttemptConnectionRefused(t *testing.T) {
	addr := refusingAddr(t)
	res := devClient(t, ClientOptions{}).Attempt(t.Context(), "http://"+addr+"/", "tok")
	checkResult(t, res, Retry, 0, "connection refused")
}

func TestAttemptConnectionClosed(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	res := devClient(t, ClientOptions{}).Attempt(t.Context(), srv.URL, "tok")
	if res.Outcome != Retry || res.StatusCode != 0 {
		t.Errorf("got %v, status %d, want retry, 0", res.Outcome, res.StatusCode)
	}
	if res.Reason != "connection closed" && res.Reason != "connection reset" {
		t.Errorf("Reason: got %q, want connection closed or reset", res.Reason)
	}
}

func TestAttemptBodyCapped(t *testing.T) {
	// The listener sends exactly MaxBodyRead bytes and then stalls: a
	// client reading one byte more would wait for the timeout.
	const limit = 1000
	srv := newHangingServer(t, strings.Repeat("x", limit))
	c := devClient(t, ClientOptions{MaxBodyRead: limit, Timeout: 5 * time.Second})
	res := c.Attempt(t.Context(), srv.URL, "tok")
	checkResult(t, res, Success, 200, "status 200")
	if res.Duration > 4*time.Second {
		t.Errorf("Duration: got %v, want well under the timeout", res.Duration)
	}

	// An endless body with the default cap.
	endless := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("y", 32<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	res = devClient(t, ClientOptions{Timeout: 5 * time.Second}).Attempt(t.Context(), endless.URL, "tok")
	checkResult(t, res, Success, 200, "status 200")
	if res.Duration > 4*time.Second {
		t.Errorf("endless body: Duration %v, want well under the timeout", res.Duration)
	}
}

func TestAttemptAddressGuard(t *testing.T) {
	var hits atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dns, r := newTestResolver(t, map[string][]string{
		"localhost":           {"127.0.0.1"},
		"listener.hookd.test": {"127.0.0.1"},
		"mapped.hookd.test":   {"::ffff:127.0.0.1"},
	})

	guarded := NewClient(ClientOptions{Resolver: r, Timeout: 5 * time.Second})
	t.Cleanup(guarded.Close)
	for _, endpoint := range []string{
		srv.URL,
		"http://localhost:" + port + "/",
		"http://listener.hookd.test:" + port + "/",
		"http://mapped.hookd.test:" + port + "/",
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://[::1]:" + port + "/",
	} {
		res := guarded.Attempt(t.Context(), endpoint, "tok")
		if res.Outcome != Retry || res.Reason != "address not allowed" {
			t.Errorf("%s without Dev: got %v %q, want retry %q", endpoint, res.Outcome, res.Reason, "address not allowed")
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("guarded client reached the listener %d times, want 0", n)
	}

	// DNS rebinding: the name passes CheckEndpoint while it resolves to a
	// public address, then resolves to loopback at delivery time. The
	// public address is only resolved, never dialed.
	dns.set("rebind.hookd.test", "93.184.215.14")
	endpoint := "https://rebind.hookd.test:" + port + "/"
	if err := CheckEndpoint(t.Context(), endpoint, false, r); err != nil {
		t.Fatalf("CheckEndpoint before rebinding: %v", err)
	}
	dns.set("rebind.hookd.test", "127.0.0.1")
	if res := guarded.Attempt(t.Context(), endpoint, "tok"); res.Outcome != Retry || res.Reason != "address not allowed" {
		t.Errorf("rebound name: got %v %q, want retry %q", res.Outcome, res.Reason, "address not allowed")
	}

	// Dev mode delivers to loopback, by address and by name.
	dev := devClient(t, ClientOptions{Resolver: r})
	for _, endpoint := range []string{srv.URL, "http://listener.hookd.test:" + port + "/"} {
		if res := dev.Attempt(t.Context(), endpoint, "tok"); res.Outcome != Success {
			t.Errorf("%s with Dev: got %v %q, want success", endpoint, res.Outcome, res.Reason)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("listener hits: got %d, want 2", n)
	}
}

func TestAttemptTLS(t *testing.T) {
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)

	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c := devClient(t, ClientOptions{TLSConfig: &tls.Config{RootCAs: roots}})
	res := c.Attempt(t.Context(), srv.URL, "tok")
	checkResult(t, res, Success, 204, "status 204")
	if got, _ := proto.Load().(string); got != "HTTP/2.0" {
		t.Errorf("protocol: got %q, want HTTP/2.0", got)
	}

	// A certificate the client does not trust.
	untrusting := devClient(t, ClientOptions{})
	res = untrusting.Attempt(t.Context(), srv.URL, "tok")
	checkResult(t, res, Retry, 0, "tls error")

	// A plain HTTP listener behind an https URL.
	plain := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	res = c.Attempt(t.Context(), "https://"+plain.Listener.Addr().String()+"/", "tok")
	checkResult(t, res, Retry, 0, "tls error")
}

func TestAttemptKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := devClient(t, ClientOptions{})
	for i := range 5 {
		if res := c.Attempt(t.Context(), srv.URL, "tok"); res.Outcome != Success {
			t.Fatalf("attempt %d: got %v %q, want success", i, res.Outcome, res.Reason)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("connections for 5 sequential attempts: got %d, want 1", n)
	}

	// Concurrent attempts all succeed.
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 32 {
		wg.Go(func() {
			if res := c.Attempt(t.Context(), srv.URL, "tok"); res.Outcome != Success {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("concurrent attempts failed: got %d, want 0", n)
	}
}

func TestAttemptBadEndpoint(t *testing.T) {
	c := devClient(t, ClientOptions{})
	for endpoint, reason := range map[string]string{
		"://nope":             "invalid endpoint",
		"ftp://127.0.0.1/":    "unsupported scheme",
		"http://bad host/":    "invalid endpoint",
		"http://[::1/":        "invalid endpoint",
		"mailto:a@hookd.test": "unsupported scheme",
	} {
		res := c.Attempt(t.Context(), endpoint, "tok")
		if res.Outcome != Fail || res.Reason != reason {
			t.Errorf("%q: got %v %q, want fail %q", endpoint, res.Outcome, res.Reason, reason)
		}
	}
}

func TestAttemptNoHost(t *testing.T) {
	_, r := newTestResolver(t, nil)
	c := devClient(t, ClientOptions{Resolver: r})
	res := c.Attempt(t.Context(), "http://nx.hookd.test/", "tok")
	checkResult(t, res, Retry, 0, "host does not resolve")
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Success: "success", Retry: "retry", Fail: "fail", Outcome(9): "outcome(9)"} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String(): got %q, want %q", int(o), got, want)
		}
	}
}

// TestAttemptKeepsBody: an attempt keeps the first MaxKeptBody bytes of
// the response body, nothing of an empty one, and still reads the rest
// (up to MaxBodyRead) so that the connection is reused.
func TestAttemptKeepsBody(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 1024) // 16 KiB
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/short":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "oops: database down")
		case "/long":
			io.WriteString(w, long)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := devClient(t, ClientOptions{Timeout: 5 * time.Second})

	res := c.Attempt(t.Context(), srv.URL+"/short", "tok")
	checkResult(t, res, Retry, 500, "status 500")
	if string(res.Body) != "oops: database down" {
		t.Errorf("short body: got %q, want it whole", res.Body)
	}
	res = c.Attempt(t.Context(), srv.URL+"/long", "tok")
	if len(res.Body) != MaxKeptBody || string(res.Body) != long[:MaxKeptBody] {
		t.Errorf("long body: got %d bytes, want its first %d", len(res.Body), MaxKeptBody)
	}
	res = c.Attempt(t.Context(), srv.URL+"/empty", "tok")
	if res.Body != nil {
		t.Errorf("empty body: got %q, want nil", res.Body)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("got %d connections for three attempts, want 1 (each body read to its end)", n)
	}
}
