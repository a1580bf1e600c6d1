// Package certfile serves a TLS certificate kept in PEM files and reads the
// files again when they change, so that a renewed certificate is served
// without a restart.
//
// A Reloader is used through tls.Config.GetCertificate. On a handshake it
// looks at the files' modification times and sizes at most once per
// CheckEvery (one second by default) and loads the pair again when either
// changed; Reload does the same at once (on SIGHUP, for instance). A pair
// that does not load (a certificate renewed but its key not yet written)
// leaves the previous certificate in service until the next check.
package certfile

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// DefaultCheckEvery is how often, at most, a handshake looks at the files.
const DefaultCheckEvery = time.Second

// Options tune a Reloader.
type Options struct {
	// CheckEvery bounds how often a handshake looks at the files;
	// DefaultCheckEvery when zero.
	CheckEvery time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OnError is told when changed files do not load (the previous
	// certificate stays in service); nil ignores it.
	OnError func(error)
}

// Reloader holds the certificate of a certificate file and a key file.
type Reloader struct {
	certFile, keyFile string
	opts              Options

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp // of the files the certificate was loaded from
	checked time.Time    // when a handshake last looked at the files
	failed  [2]fileStamp // stamps of a pair that failed to load, reported once

	stop     chan struct{} // closed by Close; set by Watch
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	mod  time.Time
	size int64
}

// New loads the certificate (a PEM chain, leaf first) and its private key
// (PEM); it is an error when they do not load or do not match.
func New(certFile, keyFile string, o Options) (*Reloader, error) {
	if o.CheckEvery <= 0 {
		o.CheckEvery = DefaultCheckEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, opts: o}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.load(); err != nil {
		return nil, err
	}
	r.checked = o.Now()
	return r, nil
}

// GetCertificate returns the current certificate, first loading the files
// again if they changed and CheckEvery has passed since the last look. It
// is meant for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.opts.Now(); now.Sub(r.checked) >= r.opts.CheckEvery || now.Before(r.checked) {
		r.checked = now
		r.reloadIfChanged()
	}
	return r.cert, nil
}

// Reload loads the files again at once. On an error the current
// certificate stays.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked = r.opts.Now()
	return r.load()
}

// reloadIfChanged loads a changed pair; a pair that fails is reported
// once and tried again when the files change again.
func (r *Reloader) reloadIfChanged() {
	stamp, err := r.stamps()
	if err == nil && (stamp == r.stamp || stamp == r.failed) {
		return
	}
	if err == nil {
		err = r.load()
	}
	if err != nil {
		r.failed = stamp
		if r.opts.OnError != nil {
			r.opts.OnError(err)
		}
	}
}

// load reads the pair and makes it current. The stamps are taken before
// reading, so that a file written meanwhile is read again at the next
// check.
func (r *Reloader) load() error {
	stamp, err := r.stamps()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

func (r *Reloader) stamps() ([2]fileStamp, error) {
	var out [2]fileStamp
	var errs []error
	for i, name := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return out, errors.Join(errs...)
}

// Watch calls Reload each time a value arrives on signals (SIGHUP, say)
// until Close; errors go to Options.OnError. Call it once; its goroutine
// ends in Close.
func (r *Reloader) Watch(signals <-chan os.Signal) {
	r.stop = make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.stop:
				return
			case <-signals:
				if err := r.Reload(); err != nil && r.opts.OnError != nil {
					r.opts.OnError(err)
				}
			}
		}
	}()
}

// Close stops Watch's goroutine and waits for it; a reload under way
// finishes first.
func (r *Reloader) Close() {
	if r.stop != nil {
		r.stopOnce.Do(func() { close(r.stop) })
	}
	r.wg.Wait()
}

// TLSConfig is the server configuration on r: TLS 1.2 at least (Go's
// default suites, all with forward secrecy and AEAD ciphers), HTTP/2 and
// HTTP/1.1 offered, the certificate from r.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: r.GetCertificate,
	}
}

// CertPool returns the system's roots plus the certificates of the PEM
// bundle in file; it is an error when the file holds none.
func CertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
