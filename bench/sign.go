package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"hookd/delivery"
	"hookd/secevent"
	"hookd/store"
)

// signLoops are the two pure signing loops of one algorithm: through
// hookd's own signer (delivery.Signer: claims to compact JWS, as the
// dispatcher signs) and through the plain library call (RS256: crypto/rsa
// PKCS #1 v1.5 over a SHA-256 digest; ES256: crypto/ecdsa over a SHA-256
// digest; EdDSA: crypto/ed25519). Each slice runs one goroutine per CPU;
// the counts add up over slices.
type signLoops struct {
	alg string
	// plainName names the plain library call, for the report.
	plainName            string
	hookdSign, plainSign func()
	// Calls made and time spent, per loop, over all slices.
	hookdN, plainN float64
	hookdT, plainT time.Duration
	// tokenLen is the size of the tokens signed: a delivery's body.
	tokenLen int
}

func newSignLoops(alg string) (*signLoops, error) {
	key, err := delivery.GenerateStoredKey(alg)
	if err != nil {
		return nil, err
	}
	signer, err := delivery.NewStoredSigner(key)
	if err != nil {
		return nil, err
	}
	priv, err := x509.ParsePKCS8PrivateKey(key.DER)
	if err != nil {
		return nil, err
	}
	claims := sampleClaims()
	token, err := signer.Sign(claims)
	if err != nil {
		return nil, err
	}
	s := &signLoops{
		alg:      alg,
		tokenLen: len(token),
		hookdSign: func() {
			if _, err := signer.Sign(claims); err != nil {
				panic(err) // the same call succeeded above
			}
		},
	}
	// The plain calls panic on an error: each signs with a key that
	// signed above.
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		s.plainName = "crypto/rsa"
		s.plainSign = func() {
			sum := sha256.Sum256(claims)
			if _, err := rsa.SignPKCS1v15(nil, p, crypto.SHA256, sum[:]); err != nil {
				panic(err)
			}
		}
	case *ecdsa.PrivateKey:
		s.plainName = "crypto/ecdsa"
		s.plainSign = func() {
			sum := sha256.Sum256(claims)
			if _, _, err := ecdsa.Sign(rand.Reader, p, sum[:]); err != nil {
				panic(err)
			}
		}
	case ed25519.PrivateKey:
		s.plainName = "crypto/ed25519"
		s.plainSign = func() { _ = ed25519.Sign(p, claims) }
	default:
		return nil, fmt.Errorf("signing loops: %T is not a signing key", priv)
	}
	return s, nil
}

// benchAlgs are the algorithms of the delivery phase, RS256 (the
// reference of the others' targets) first.
var benchAlgs = []string{store.AlgRS256, store.AlgES256, store.AlgEdDSA}

// slice runs one loop for about d: hookd's signer when hookd is true.
func (s *signLoops) slice(d time.Duration, hookd bool) {
	if hookd {
		n, t := loop(d, s.hookdSign)
		s.hookdN, s.hookdT = s.hookdN+n, s.hookdT+t
		return
	}
	n, t := loop(d, s.plainSign)
	s.plainN, s.plainT = s.plainN+n, s.plainT+t
}

// rates returns the signatures per second of both loops so far.
func (s *signLoops) rates() (hookdRate, plainRate float64) {
	if s.hookdT > 0 {
		hookdRate = s.hookdN / s.hookdT.Seconds()
	}
	if s.plainT > 0 {
		plainRate = s.plainN / s.plainT.Seconds()
	}
	return hookdRate, plainRate
}

// loop runs fn on every CPU for about d and returns the calls made and
// the time taken.
func loop(d time.Duration, fn func()) (float64, time.Duration) {
	return loopOn(runtime.NumCPU(), d, fn)
}

// loopOn runs fn in a loop on each of workers goroutines for about d and
// returns the calls made and the time taken.
func loopOn(workers int, d time.Duration, fn func()) (float64, time.Duration) {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				fn()
				n.Add(1)
			}
		}()
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	return float64(n.Load()), time.Since(start)
}

// sampleClaims returns claims of the size the delivery phase sends.
func sampleClaims() []byte {
	ev := appendEventObject(nil, 0, "user", 0, -1)
	return secevent.AppendClaims(nil, secevent.Claims{
		Issuer:      "http://127.0.0.1:40000/6f1c1c9e-4d7e-4a57-9b7e-2c1f0b1f4a10/webhooks",
		IssuedAt:    time.Now().Unix(),
		ID:          "0000000000000001-4d7e-4a57-9b7e-2c1f0b1f4a10",
		Audience:    []string{"http://127.0.0.1:40001/hook"},
		Txn:         "9b7e2c1f-0b1f-4a10-6f1c-1c9e4d7e4a57",
		TimeOfEvent: time.Now().Unix(),
		EventType:   "entityCreated",
		Event:       ev,
	})
}
