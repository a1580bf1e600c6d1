package certfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hookd test CA"},
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
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns the PEM of a certificate for 127.0.0.1 with serial, and of its key.
func (ca *testCA) issue(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
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

// pair is a certificate and key file whose versions get distinct mtimes.
type pair struct {
	t                 *testing.T
	certFile, keyFile string
	version           int
}

func (p *pair) write(name string, data []byte) {
	p.t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		p.t.Fatal(err)
	}
	// A distinct modification time for every version, whatever the
	// file system's timestamp granularity.
	p.version++
	mod := time.Date(2026, 1, 1, 0, 0, p.version, 0, time.UTC)
	if err := os.Chtimes(name, mod, mod); err != nil {
		p.t.Fatal(err)
	}
}

// fakeClock is a clock moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// served starts an HTTPS server on the reloader and returns a function that
// makes a new connection and returns the serial of the certificate served.
func served(t *testing.T, ca *testCA, r *Reloader) func() int64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		TLSConfig: &tls.Config{GetCertificate: r.GetCertificate},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return func() int64 {
		t.Helper()
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, DisableKeepAlives: true}}
		resp, err := client.Get("https://" + ln.Addr().String())
		if err != nil {
			t.Fatalf("GET over TLS: %v", err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
}

func newPair(t *testing.T, ca *testCA, serial int64) *pair {
	t.Helper()
	dir := t.TempDir()
	p := &pair{t: t, certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	c, k := ca.issue(t, serial)
	p.write(p.certFile, c)
	p.write(p.keyFile, k)
	return p
}

// TestReloadOnHandshakeAtMostOncePerInterval: a certificate renewed on disk
// is served on the first new connection after CheckEvery, without a
// restart; within the interval the files are not looked at.
func TestReloadOnHandshakeAtMostOncePerInterval(t *testing.T) {
	ca := newTestCA(t)
	p := newPair(t, ca, 100)
	clock := &fakeClock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	errs := make(chan error, 10)
	r, err := New(p.certFile, p.keyFile, Options{Now: clock.Now, OnError: func(err error) { errs <- err }})
	if err != nil {
		t.Fatal(err)
	}
	serial := served(t, ca, r)
	if got := serial(); got != 100 {
		t.Fatalf("got serial %d, want 100", got)
	}

	c, k := ca.issue(t, 200)
	p.write(p.certFile, c)
	p.write(p.keyFile, k)
	clock.Add(DefaultCheckEvery / 2)
	if got := serial(); got != 100 {
		t.Fatalf("got serial %d within the check interval, want the old 100", got)
	}
	clock.Add(DefaultCheckEvery / 2)
	if got := serial(); got != 200 {
		t.Fatalf("got serial %d after the check interval, want the renewed 200", got)
	}

	// A renewal caught half way (the new certificate, the old key) keeps
	// the certificate in service, is reported once, and the complete pair
	// is served at the next check.
	c, k = ca.issue(t, 300)
	p.write(p.certFile, c)
	clock.Add(DefaultCheckEvery)
	if got := serial(); got != 200 {
		t.Fatalf("got serial %d with a mismatched pair on disk, want the old 200", got)
	}
	clock.Add(DefaultCheckEvery)
	serial()
	if len(errs) != 1 {
		t.Fatalf("got %d errors reported for one bad pair, want 1", len(errs))
	}
	p.write(p.keyFile, k)
	clock.Add(DefaultCheckEvery)
	if got := serial(); got != 300 {
		t.Fatalf("got serial %d once the key was written, want 300", got)
	}
}

// TestReloadOnSignal: a value on the watched channel (SIGHUP in hookd)
// loads the files at once, whatever the clock; a bad pair is an error and
// keeps the certificate in service; Close ends the watch.
func TestReloadOnSignal(t *testing.T) {
	ca := newTestCA(t)
	p := newPair(t, ca, 1)
	clock := &fakeClock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	errs := make(chan error, 10)
	r, err := New(p.certFile, p.keyFile, Options{Now: clock.Now, OnError: func(err error) { errs <- err }})
	if err != nil {
		t.Fatal(err)
	}
	serial := served(t, ca, r)

	signals := make(chan os.Signal) // unbuffered: a send returns once the watch took it
	r.Watch(signals)
	c, k := ca.issue(t, 2)
	p.write(p.certFile, c)
	p.write(p.keyFile, k)
	signals <- os.Interrupt
	signals <- os.Interrupt // taken only after the first reload finished
	if got := serial(); got != 2 {
		t.Fatalf("got serial %d after the signal, want 2", got)
	}

	p.write(p.keyFile, []byte("not a key"))
	signals <- os.Interrupt
	signals <- os.Interrupt
	if got := serial(); got != 2 {
		t.Fatalf("got serial %d after a bad key, want 2 still", got)
	}
	r.Close()
	if len(errs) == 0 {
		t.Fatal("got no error for a bad key, want one")
	}
	select {
	case signals <- os.Interrupt:
		t.Fatal("got a signal taken after Close, want the watch ended")
	default:
	}
}

func TestNewRefusesBadPairs(t *testing.T) {
	ca := newTestCA(t)
	p := newPair(t, ca, 1)
	_, otherKey := ca.issue(t, 2)
	other := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(other, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, files := range map[string][2]string{
		"missing certificate": {filepath.Join(t.TempDir(), "none.crt"), p.keyFile},
		"missing key":         {p.certFile, filepath.Join(t.TempDir(), "none.key")},
		"key of another":      {p.certFile, other},
		"swapped":             {p.keyFile, p.certFile},
	} {
		if _, err := New(files[0], files[1], Options{}); err == nil {
			t.Errorf("%s: got no error, want one", name)
		}
	}
}

// TestTLSConfig: the server configuration negotiates HTTP/2 and refuses
// TLS versions before 1.2.
func TestTLSConfig(t *testing.T) {
	ca := newTestCA(t)
	p := newPair(t, ca, 7)
	r, err := New(p.certFile, p.keyFile, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	st := conn.ConnectionState()
	conn.Close()
	if st.NegotiatedProtocol != "h2" || st.Version < tls.VersionTLS12 {
		t.Errorf("got protocol %q, version %x, want h2 over TLS 1.2 or later", st.NegotiatedProtocol, st.Version)
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("got a TLS 1.1 handshake accepted, want it refused")
	}
}

// TestCertPool: the bundle's CA is trusted next to the system roots; a file
// without a certificate is an error.
func TestCertPool(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := CertPool(bundle)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := ca.issue(t, 9)
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("got %v verifying a certificate of the bundle's CA, want it trusted", err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificate here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CertPool(empty); err == nil {
		t.Error("got no error for a file without a certificate, want one")
	}
	if _, err := CertPool(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("got no error for a missing file, want one")
	}
}
