package node

import (
	"net/http"
	"net/http/pprof"
)

// registerDebug serves the Go runtime's profiles (net/http/pprof) under
// /debug/pprof/ on the API, admin token only: the profiles of the real
// binary under real load are how the serving and ingest paths are tuned
// (bench/RESULTS.md). For example, 20 seconds of CPU profile:
//
//	curl -H "Authorization: Bearer $TOKEN" -o cpu.pprof \
//	  'http://127.0.0.1:8081/debug/pprof/profile?seconds=20'
//	go tool pprof -top cpu.pprof
func registerDebug(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET /debug/pprof/", auth(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", auth(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", auth(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", auth(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", auth(http.HandlerFunc(pprof.Trace)))
}
