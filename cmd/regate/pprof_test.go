package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// protectRecorder records what the profiler asks the proxy to refuse.
type protectRecorder struct{ addrs []net.Addr }

func (r *protectRecorder) Protect(a net.Addr) { r.addrs = append(r.addrs, a) }

func TestProfilerServesPprofOnItsOwnMux(t *testing.T) {
	p, err := startProfiler("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	base := "http://" + p.addr.String()
	resp, err := http.Get(base + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("goroutine profile: %s\n%.200s", resp.Status, body)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the profiler: %s, want 404 (its own mux only)", resp.Status)
	}
	var rec protectRecorder
	p.protect(&rec)
	if len(rec.addrs) != 1 || rec.addrs[0].String() != p.addr.String() {
		t.Errorf("protected %v, want %v", rec.addrs, p.addr)
	}
	var off *profiler
	off.protect(&rec) // off: nothing to protect, no panic
	off.stop()
	if len(rec.addrs) != 1 {
		t.Errorf("an off profiler protected %v", rec.addrs[1:])
	}
}
