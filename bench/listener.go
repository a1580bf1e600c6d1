package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// behavior is how a listener answers.
type behavior int

const (
	// answerOK answers 204 at once.
	answerOK behavior = iota
	// answerHang never answers: it holds the request until hookd gives up.
	answerHang
	// answerError answers 500 at once.
	answerError
)

// receipt is one notification received by a healthy listener.
type receipt struct {
	at   time.Duration // since the harness's base time
	sent time.Duration // the event's benchSent, -1 when absent
	seq  int64         // the event's benchSeq, -1 when absent
}

// sink collects the receipts of healthy listeners.
type sink struct {
	base time.Time
	// decode makes the listeners read benchSent and benchSeq from the
	// token's payload (the latency phases); otherwise they only count.
	decode bool

	mu       sync.Mutex
	receipts []receipt
	seen     map[int64]bool // benchSeq values received, when decoding
	count    atomic.Int64
	unique   atomic.Int64 // distinct benchSeq values received
	dups     atomic.Int64 // receipts of a benchSeq already received
	bad      atomic.Int64 // answered by misbehaving listeners
}

func (s *sink) add(r receipt) {
	s.mu.Lock()
	s.receipts = append(s.receipts, r)
	if r.seq >= 0 {
		if s.seen == nil {
			s.seen = map[int64]bool{}
		}
		if s.seen[r.seq] {
			s.dups.Add(1)
		} else {
			s.seen[r.seq] = true
			s.unique.Add(1)
		}
	}
	s.mu.Unlock()
	s.count.Add(1)
}

// snapshot returns a copy of the receipts so far.
func (s *sink) snapshot() []receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receipt(nil), s.receipts...)
}

// listener is a loopback HTTP server standing for one subscriber.
type listener struct {
	URL string
	srv *http.Server
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// startListener serves on a free loopback port with the given behavior,
// recording healthy receipts in snk.
func startListener(snk *sink, b behavior) (*listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch b {
		case answerHang:
			snk.bad.Add(1)
			<-r.Context().Done()
			return
		case answerError:
			snk.bad.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		bp := bodyPool.Get().(*[]byte)
		buf := bytes.NewBuffer((*bp)[:0])
		_, err := buf.ReadFrom(r.Body)
		at := time.Since(snk.base)
		if err != nil {
			bodyPool.Put(bp)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc := receipt{at: at, sent: -1, seq: -1}
		if snk.decode {
			rc.sent, rc.seq = benchFields(buf.Bytes())
		}
		*bp = buf.Bytes()[:0]
		bodyPool.Put(bp)
		snk.add(rc)
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	return &listener{URL: "http://" + ln.Addr().String() + "/hook", srv: srv}, nil
}

// close stops the listener; hanging requests are cut.
func (l *listener) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.srv.Shutdown(ctx); err != nil {
		_ = l.srv.Close()
	}
}

func closeListeners(ls []*listener) {
	for _, l := range ls {
		l.close()
	}
}

// benchFields reads benchSent and benchSeq from the payload of a compact
// JWS, without verifying it; -1 when absent.
func benchFields(jws []byte) (sent time.Duration, seq int64) {
	sent, seq = -1, -1
	i := bytes.IndexByte(jws, '.')
	j := bytes.LastIndexByte(jws, '.')
	if i < 0 || j <= i {
		return
	}
	payload := make([]byte, base64.RawURLEncoding.DecodedLen(j-i-1))
	n, err := base64.RawURLEncoding.Decode(payload, jws[i+1:j])
	if err != nil {
		return
	}
	payload = payload[:n]
	if v, err := jsonInt(payload, `"benchSent":`); err == nil {
		sent = time.Duration(v)
	}
	if v, err := jsonInt(payload, `"benchSeq":`); err == nil {
		seq = v
	}
	return
}

// jsonInt reads the integer after key in data.
func jsonInt(data []byte, key string) (int64, error) {
	k := bytes.Index(data, []byte(key))
	if k < 0 {
		return 0, errors.New("absent")
	}
	rest := data[k+len(key):]
	end := 0
	for end < len(rest) && (rest[end] == '-' || (rest[end] >= '0' && rest[end] <= '9')) {
		end++
	}
	return strconv.ParseInt(string(rest[:end]), 10, 64)
}
