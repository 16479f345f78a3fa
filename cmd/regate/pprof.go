package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// profiler serves Go's profiling endpoints (/debug/pprof/…) on the
// loopback address of --pprof / REGATE_PPROF, for measuring regate under
// load; off unless asked (README, Configuration).
type profiler struct {
	srv  *http.Server
	addr net.Addr
}

// startProfiler listens on addr (config validation made sure it is
// loopback) and serves the endpoints on their own mux, never on
// http.DefaultServeMux.
func startProfiler(addr string, log *slog.Logger) (*profiler, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &profiler{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
		addr: ln.Addr(),
	}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof listener failed", "error", err)
		}
	}()
	log.Info("profiling endpoints", "pprof", "http://"+p.addr.String()+"/debug/pprof/")
	return p, nil
}

// protect makes the proxy refuse to reach the endpoints, as it refuses
// the admin API.
func (p *profiler) protect(px interface{ Protect(net.Addr) }) {
	if p != nil {
		px.Protect(p.addr)
	}
}

// stop closes the listener and any profile being taken.
func (p *profiler) stop() {
	if p != nil {
		_ = p.srv.Close()
	}
}
