package httpapi

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// profile serves Go's runtime profiles (net/http/pprof) under
// /debug/pprof/ behind the admin token, so that an operator can take a CPU
// or heap profile of a running hookd without restarting it:
//
//	curl -H "Authorization: Bearer $TOKEN" -o cpu.pprof 'http://host:8080/debug/pprof/profile?seconds=30'
//	go tool pprof -http : cpu.pprof
//
// A CPU profile or trace runs for as long as it asks (30 s by default), so
// these routes are not bounded by the API timeout.
func (s *Server) profile(w http.ResponseWriter, r *http.Request) error {
	switch name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name {
	case "":
		pprof.Index(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
	return nil
}
