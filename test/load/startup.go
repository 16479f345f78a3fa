package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// runStartup is the startup workload of the first served binary: the
// wall time of `regate run -- true` (hyperfine's mean where it is
// installed, else this tool's own median over as many runs), and the
// time `regate serve` with an allow list of o.startupPatterns patterns
// takes from its start until its health check answers 200, the median
// over o.startupRuns starts.
func runStartup(ctx context.Context, o options, dir string, rep *report, progress io.Writer) error {
	bin, err := regateBinary(o, dir)
	if err != nil {
		return err
	}
	name := targetRegateBin
	if len(o.binaries) > 0 {
		name = o.binaries[0].name
	}
	ms, how, err := runWallTime(ctx, o, bin, dir)
	if err != nil {
		return err
	}
	rep.StartupRunHow = how
	rep.addTarget(name)
	w := newRow("startup-run", "`regate run -- true` wall time", "ms", goalStartupRun)
	w.Latency = true
	w.Values[name] = round1(ms)
	rep.finish(&w)
	cfg, err := servedConfig(dir, o.startupPatterns, 0)
	if err != nil {
		return err
	}
	var ready []time.Duration
	for range o.startupRuns {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := serveReady(bin, cfg, dir)
		if err != nil {
			return fmt.Errorf("startup workload: %w", err)
		}
		ready = append(ready, d)
	}
	slices.Sort(ready)
	w = newRow("startup-serve", fmt.Sprintf("`regate serve` ready (health 200), %d patterns", o.startupPatterns), "ms", goalStartupServe)
	w.Latency = true
	w.Values[name] = round1(float64(ready[len(ready)/2]) / float64(time.Millisecond))
	rep.finish(&w)
	fmt.Fprintf(progress, "%-32s %s %.1f ms (%s); serve ready %v\n", "startup", name, ms, how, ready)
	return nil
}

// runWallTime is the wall time of `bin run -- true` in milliseconds and
// how it was measured.
func runWallTime(ctx context.Context, o options, bin, dir string) (float64, string, error) {
	cmdline := []string{bin, "run", "--", "true"}
	if path, err := findHyperfine(o.hyperfine); err == nil {
		out := filepath.Join(dir, "hyperfine.json")
		hf := exec.CommandContext(ctx, path, "-N", "--style", "none", "--warmup", "3", "--runs", strconv.Itoa(o.startupRuns),
			"--export-json", out, bin+" run -- true")
		hf.Env = cleanEnv()
		if b, err := hf.CombinedOutput(); err != nil {
			return 0, "", fmt.Errorf("hyperfine: %w: %s", err, b)
		}
		var res struct {
			Results []struct {
				Mean, Stddev float64
			} `json:"results"`
		}
		b, err := os.ReadFile(out)
		if err == nil {
			err = json.Unmarshal(b, &res)
		}
		if err != nil || len(res.Results) != 1 {
			return 0, "", fmt.Errorf("reading hyperfine's results: %v", err)
		}
		r := res.Results[0]
		return r.Mean * 1000, fmt.Sprintf("hyperfine mean of %d runs, σ %.1f ms", o.startupRuns, r.Stddev*1000), nil
	}
	var d []time.Duration
	warmup := min(3, o.startupRuns) // as hyperfine's --warmup 3
	for i := range o.startupRuns + warmup {
		cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
		cmd.Env = cleanEnv()
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			return 0, "", fmt.Errorf("%s run -- true: %w: %s", bin, err, b)
		}
		if i >= warmup {
			d = append(d, time.Since(start))
		}
	}
	slices.Sort(d)
	return float64(d[len(d)/2]) / float64(time.Millisecond), fmt.Sprintf("median of %d runs (hyperfine not installed)", o.startupRuns), nil
}

// findHyperfine returns the hyperfine binary: "auto" looks on PATH, "off"
// uses this tool's own timing.
func findHyperfine(flag string) (string, error) {
	switch flag {
	case "off":
		return "", errors.New("hyperfine disabled")
	case "auto":
		return exec.LookPath("hyperfine")
	}
	return flag, nil
}

// serveReady starts `bin serve` with the configuration cfg and its admin
// API on a unix socket, and returns the time from its start until
// GET /health answers 200; then it stops it.
func serveReady(bin, cfg, dir string) (time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	sock := filepath.Join(dir, "startup-admin.sock")
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	defer client.CloseIdleConnections()
	cmd := exec.Command(bin, "serve", "--config", cfg, "--http", "127.0.0.1:"+strconv.Itoa(port), "--socks", "off",
		"--admin", "unix:"+sock, "--watch=false", "--log-level", "warn")
	cmd.Env = cleanEnv()
	stderr, err := os.Create(filepath.Join(dir, "startup.stderr"))
	if err != nil {
		return 0, err
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stderr, stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s serve: %w", bin, err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
	}()
	for time.Since(start) < 30*time.Second {
		resp, err := client.Get("http://regate/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		select {
		case <-waited:
			return 0, fmt.Errorf("%s serve exited before it was ready: %s", bin, tail(stderr.Name(), 5))
		case <-time.After(time.Millisecond):
		}
	}
	return 0, fmt.Errorf("%s serve: not ready after 30s", bin)
}
