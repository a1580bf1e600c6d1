package e2e

// End-to-end tests of hookd's own TLS (--tls-cert, --tls-key), of listener
// endpoints under a private CA (--listener-ca-file) and of the warning
// about plain HTTP.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// e2eCA is a certificate authority made for one test.
type e2eCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newE2ECA(t *testing.T, name string) *e2eCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &e2eCA{cert: cert, key: key, pool: pool}
}

// pem is the CA's certificate in PEM.
func (ca *e2eCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// issue returns a certificate for 127.0.0.1 with serial and its key, in PEM.
func (ca *e2eCA) issue(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// trustForTest makes the harness's client (http.DefaultClient) trust pool
// and speak HTTP/2, until the end of the test. Tests of this package do
// not run in parallel.
func trustForTest(t *testing.T, pool *x509.CertPool) {
	t.Helper()
	saved := http.DefaultClient
	http.DefaultClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		http.DefaultClient = saved
	})
}

// httpsListener is a listener endpoint with a certificate of ca that
// reports each notification's Content-Type.
func httpsListener(t *testing.T, ca *e2eCA) (string, <-chan string) {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, 50)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case got <- r.Header.Get("Content-Type"):
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// TestTLS: hookd serves its API over HTTPS with HTTP/2 from --tls-cert and
// --tls-key; the token flow and the API work over it; a listener whose
// certificate comes from the --listener-ca-file CA receives notifications;
// and a certificate replaced on disk is served after SIGHUP, without a
// restart.
func TestTLS(t *testing.T) {
	apiCA, listenerCA := newE2ECA(t, "hookd API test CA"), newE2ECA(t, "listener test CA")
	dir := t.TempDir()
	certFile, keyFile, bundle := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "listeners.pem")
	c, k := apiCA.issue(t, 100)
	writeFile(t, certFile, padded(c))
	writeFile(t, keyFile, padded(k))
	writeFile(t, bundle, listenerCA.pem())
	listenerURL, notified := httpsListener(t, listenerCA)
	trustForTest(t, apiCA.pool)

	h := startHookd(t, "", "--tls-cert", certFile, "--tls-key", keyFile, "--listener-ca-file", bundle)
	if !strings.HasPrefix(h.URL, "https://") {
		t.Fatalf("got URL %s, want https", h.URL)
	}
	if strings.Contains(h.Stderr.String(), "travel in clear") {
		t.Error("got the plain HTTP warning with TLS on, want none")
	}

	// The token flow, over HTTP/2.
	tn := h.newTenant()
	resp, data := h.call(http.MethodGet, tn.path("/webhooks/subscriptions"), tn.Token, nil)
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.ProtoMajor != 2 {
		t.Fatalf("got %s %d (TLS %v), want 200 over HTTP/2 and TLS; body %s", resp.Proto, resp.StatusCode, resp.TLS != nil, data)
	}

	// A delivery to a listener of the private CA.
	var sub struct{ ID string }
	h.mustCall(http.StatusCreated, http.MethodPost, tn.path("/webhooks/subscriptions"), tn.Token,
		map[string]any{"title": "tls listener", "endpoint": listenerURL, "events": []string{"entityCreated"}}, &sub)
	var test struct {
		StatusCode int  `json:"statusCode"`
		Success    bool `json:"success"`
	}
	h.mustCall(http.StatusOK, http.MethodPost, tn.path("/webhooks/subscriptions/"+sub.ID+"/test"), tn.Token, nil, &test)
	if !test.Success || test.StatusCode != http.StatusNoContent {
		t.Errorf("got test notification %+v, want success with 204", test)
	}
	<-notified // the test notification
	h.mustCall(http.StatusAccepted, http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, map[string]any{
		"type": "entityCreated", "event": map[string]any{"captureApplicationId": "app", "captureClientId": "cl",
			"entityType": "user", "globalSub": "capture-v1://x/1", "sub": "u-1"}}, nil)
	select {
	case ct := <-notified:
		if ct != "application/secevent+jwt" {
			t.Errorf("got Content-Type %q, want application/secevent+jwt", ct)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("got no notification at the HTTPS listener within 20s")
	}

	// The certificate renewed on disk is served on new connections after
	// SIGHUP; the process keeps running.
	if got := servedSerial(t, h.URL, apiCA.pool); got != 100 {
		t.Fatalf("got serial %d, want 100", got)
	}
	// The new files have the old ones' sizes and modification times, so
	// that only the signal, not the check on handshakes, can find them.
	stamps := map[string]time.Time{}
	for _, name := range []string{certFile, keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		stamps[name] = fi.ModTime()
	}
	c, k = apiCA.issue(t, 200)
	writeFile(t, certFile, padded(c))
	writeFile(t, keyFile, padded(k))
	for name, mod := range stamps {
		if err := os.Chtimes(name, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The signal is handled on its own goroutine: poll new connections.
	deadline := time.Now().Add(20 * time.Second)
	for servedSerial(t, h.URL, apiCA.pool) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("got the old certificate 20s after SIGHUP, want the renewed one (serial 200)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.mustCall(http.StatusOK, http.MethodGet, tn.path("/webhooks/subscriptions"), tn.Token, nil, nil)
}

// padded appends newlines to a PEM file up to a fixed size (PEM decoding
// skips them), so that every certificate and key file has the same size.
func padded(pem []byte) []byte {
	const size = 4096
	out := make([]byte, size)
	copy(out, pem)
	for i := len(pem); i < size; i++ {
		out[i] = '\n'
	}
	return out
}

// servedSerial makes a new TLS connection to url and returns the serial
// number of the certificate it is served.
func servedSerial(t *testing.T, url string, roots *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", url, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestListenerCAFileNeeded: without --listener-ca-file, a listener whose
// certificate comes from a private CA is not trusted.
func TestListenerCAFileNeeded(t *testing.T) {
	listenerURL, _ := httpsListener(t, newE2ECA(t, "listener test CA"))
	h := startHookd(t, "")
	tn := h.newTenant()
	var sub struct{ ID string }
	h.mustCall(http.StatusCreated, http.MethodPost, tn.path("/webhooks/subscriptions"), tn.Token,
		map[string]any{"title": "untrusted", "endpoint": listenerURL, "events": []string{}}, &sub)
	var test struct{ Success bool }
	h.mustCall(http.StatusOK, http.MethodPost, tn.path("/webhooks/subscriptions/"+sub.ID+"/test"), tn.Token, nil, &test)
	if test.Success {
		t.Error("got a test notification delivered to a listener of an unknown CA, want it refused")
	}
}

// TestPlainHTTPWarning: without TLS and without --dev, hookd warns once at
// start that secrets travel in clear; with --dev it does not.
func TestPlainHTTPWarning(t *testing.T) {
	h := startHookdNoDev(t, "", "--blob-url", "mem://")
	if n := strings.Count(h.Stderr.String(), "travel in clear"); n != 1 {
		t.Errorf("got the plain HTTP warning %d times, want once; log %s", n, h.Stderr.String())
	}
	d := startHookd(t, "", "--blob-url", "mem://")
	if strings.Contains(d.Stderr.String(), "travel in clear") {
		t.Error("got the plain HTTP warning with --dev, want none")
	}
}

// TestTLSFlagsRefused: --tls-cert needs --tls-key, and files that do not
// load stop hookd before it serves.
func TestTLSFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	ca := newE2ECA(t, "test CA")
	c, _ := ca.issue(t, 1)
	_, otherKey := ca.issue(t, 2)
	certFile, keyFile, notPEM := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "other.key"), filepath.Join(dir, "not.pem")
	writeFile(t, certFile, c)
	writeFile(t, keyFile, otherKey)
	writeFile(t, notPEM, []byte("no certificate\n"))
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"cert without key":   {[]string{"--tls-cert", certFile}, "--tls-key must be given together"},
		"key without cert":   {[]string{"--tls-key", keyFile}, "--tls-key must be given together"},
		"key of another":     {[]string{"--tls-cert", certFile, "--tls-key", keyFile}, "private key does not match"},
		"ca file without CA": {[]string{"--listener-ca-file", notPEM}, "holds no PEM certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "error"}, tc.args...)
			var stderr syncBuffer
			err := run(context.Background(), args, func(string) string { return "" }, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
