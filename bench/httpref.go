package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// httpExchangeCPU measures the CPU of one plain net/http exchange, client
// and server in this process over loopback: POSTs of a body of bodySize to
// a handler that reads it and answers 204, inFlight at a time, for about
// d. It is the floor of a delivery's work besides the signature when the
// listeners share the machine: hookd's side of the exchange plus the
// listener's, with nothing stored and nothing signed. hookd should be idle
// (or paused) meanwhile.
func httpExchangeCPU(d time.Duration, bodySize, inFlight int) (perRequest time.Duration, rate float64, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: inFlight, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://" + ln.Addr().String() + "/hook"
	body := bytes.Repeat([]byte("x"), bodySize)

	var failed atomic.Int64
	c0 := selfCPU()
	n, took := loopOn(inFlight, d, func() {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/secevent+jwt")
		resp, err := client.Do(req)
		if err != nil {
			failed.Add(1)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	used := selfCPU() - c0
	if n == 0 || failed.Load() > 0 {
		return 0, 0, fmt.Errorf("http exchange reference: %.0f requests, %d failed", n, failed.Load())
	}
	return time.Duration(float64(used) / n), n / took.Seconds(), nil
}

// selfCPU is this process's CPU time so far (user and system).
func selfCPU() time.Duration {
	ticks, _ := procTicks("/proc/self/stat")
	return time.Duration(ticks) * time.Second / clockTicks
}
