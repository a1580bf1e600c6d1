package delivery

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"hookd/store"
)

// TestAttemptReasonCodes produces every reason code that loopback can
// produce and checks that the attempt carries it.
func TestAttemptReasonCodes(t *testing.T) {
	answer := func(code int) string {
		return newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(code)
		}).URL
	}
	// A listener that accepts connections and never says a word: an https
	// URL to it never completes the TLS handshake.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	refused := refusingAddr(t)
	selfSigned := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	selfSigned.Config.ErrorLog = log.New(io.Discard, "", 0)
	selfSigned.StartTLS()
	t.Cleanup(selfSigned.Close)
	plain := newServer(t, func(http.ResponseWriter, *http.Request) {})

	// A short timeout for the two cases that wait for it; room for a slow
	// handshake (under the race detector) for the others.
	short := devClient(t, ClientOptions{Timeout: 300 * time.Millisecond})
	dev := devClient(t, ClientOptions{Timeout: 5 * time.Second})
	guarded := NewClient(ClientOptions{Timeout: 5 * time.Second})
	t.Cleanup(guarded.Close)
	tests := []struct {
		name     string
		client   *Client
		endpoint string
		code     store.ReasonCode
	}{
		{"400", dev, answer(400), store.ReasonStatus4xx},
		{"404", dev, answer(404), store.ReasonStatus4xx},
		{"429", dev, answer(429), store.ReasonStatus4xx},
		{"410", dev, answer(410), store.ReasonEndpointGone},
		{"500", dev, answer(500), store.ReasonStatus5xx},
		{"503", dev, answer(503), store.ReasonStatus5xx},
		{"302", dev, answer(302), store.ReasonRedirect},
		{"hanging listener", short, newHangingServer(t, "").URL, store.ReasonResponseTooSlow},
		{"no TLS handshake", short, "https://" + silent.Addr().String() + "/", store.ReasonTimeout},
		{"connection refused", dev, "http://" + refused + "/", store.ReasonConnect},
		{"loopback without dev", guarded, plain.URL, store.ReasonBlockedAddress},
		{"unresolvable name", dev, "http://nx.hookd.invalid/", store.ReasonDNS},
		{"plain HTTP behind https", dev, "https://" + plain.Listener.Addr().String() + "/", store.ReasonTLS},
		{"self-signed certificate", dev, selfSigned.URL, store.ReasonTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.client.Attempt(t.Context(), tt.endpoint, "tok")
			if res.Code != tt.code || res.Outcome == Success {
				t.Errorf("got %v code %q (reason %q), want a failure with code %q", res.Outcome, res.Code, res.Reason, tt.code)
			}
		})
	}
	if res := dev.Attempt(t.Context(), answer(204), "tok"); res.Code != store.ReasonNone {
		t.Errorf("success: got code %q, want none", res.Code)
	}
}
