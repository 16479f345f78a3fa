package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// tunnelFiles is how many descriptors an idle tunnel may cost a process:
// this tool holds two (the client's and the echo server's), regate two
// (the client's and the upstream's: an idle relay waits on the socket,
// not inside splice, which would hold a pipe too), Squid two.
const tunnelFiles = 2

// memProc is a proxy process the memory workload measures: how clients
// reach it, its process id, and how to stop it.
type memProc struct {
	t    target
	pid  int
	stop func()
}

// memStarter starts a fresh proxy process of one target.
type memStarter struct {
	name  string
	start func() (*memProc, error)
}

// runMemory is the memory workload: for the served binaries and Squid,
// each started afresh for each kind of connection, the resident size a
// connection adds while n of them stay open and idle: keep-alive client
// connections that made one GET, and tunnels that echoed one byte. The
// open-files limit is raised to its hard limit first; where it cannot
// hold n (a tunnel costs this process two descriptors, the client's and
// the upstream's), n is lowered and the row says so.
func runMemory(ctx context.Context, o options, e *env, dir string, rep *report, progress io.Writer) error {
	limit, err := raiseOpenFiles()
	if err == nil {
		_, err = residentBytes(os.Getpid())
	}
	if err != nil {
		rep.MemorySkipped = "memory rows skipped: " + err.Error()
		fmt.Fprintln(progress, rep.MemorySkipped)
		return nil
	}
	starters, err := memStarters(o, e, dir)
	if err != nil {
		return err
	}
	kinds := []struct {
		id, what string
		n        int
		open     func(target, *upstream) (net.Conn, error)
	}{
		{"memory-keepalive", "idle keep-alive connection", min(o.memConns, limit-1000), openKeepAlive},
		{"memory-tunnel", "idle tunnel", min(o.memConns, (limit-1000)/tunnelFiles), openIdleTunnel},
	}
	for _, k := range kinds {
		if k.n < 1 {
			return fmt.Errorf("memory workload: the open-files limit %d is too low", limit)
		}
		for _, s := range starters {
			rep.addTarget(s.name)
		}
		w := newRow(k.id, fmt.Sprintf("RSS per %s, %d open", k.what, k.n), "B/conn", goalMemory)
		w.Latency = true // lower is better; ratios are of the values
		for _, s := range starters {
			if err := ctx.Err(); err != nil {
				return err
			}
			per, files, errs, err := measureIdle(s, e.u, k.n, o.memSettle, k.open)
			if err != nil {
				return fmt.Errorf("memory workload, %s: %w", s.name, err)
			}
			if rep.FilesPerConn[k.id] == nil {
				rep.FilesPerConn[k.id] = map[string]float64{}
			}
			rep.FilesPerConn[k.id][s.name] = round1(files)
			w.Values[s.name], w.Errors[s.name] = round1(per), errs.n
			if errs.first != nil {
				w.FirstErrors[s.name] = errs.first.Error()
			}
		}
		if k.n < o.memConns {
			w.Title += fmt.Sprintf(" (of %d: open-files limit %d)", o.memConns, limit)
		}
		rep.finish(&w)
		fmt.Fprintf(progress, "%-32s %s\n", w.Title, mapLine(w.Values, rep.Targets, "%.0f"))
	}
	return nil
}

// memStarters are the served binaries, with the proxy workloads' policy
// and room for the workload's tunnels (proxy.max_tunnels and
// max_tunnels_per_client, 4,096 and 1,024 by default), and Squid when it
// is there.
func memStarters(o options, e *env, dir string) ([]memStarter, error) {
	bins, err := servedBinaries(o, dir)
	if err != nil {
		return nil, err
	}
	cfg, err := servedConfig(dir, o.patterns, o.memConns+1000)
	if err != nil {
		return nil, err
	}
	var out []memStarter
	for _, bin := range bins {
		out = append(out, memStarter{bin.name, func() (*memProc, error) {
			b, err := startBinary(bin.path, bin.name+"-memory", dir, false, []string{"--config", cfg})
			if err != nil {
				return nil, err
			}
			return &memProc{t: target{name: bin.name, proxyAddr: b.addr}, pid: b.cmd.Process.Pid, stop: func() { b.stop() }}, nil
		}})
	}
	path, err := findSquid(o.squid)
	if err != nil {
		return out, nil // the report says why Squid is missing
	}
	ports := []int{e.u.httpPort, e.u.echoPort}
	out = append(out, memStarter{targetSquid, func() (*memProc, error) {
		s, err := startSquid(path, dir, ports)
		if err != nil {
			return nil, err
		}
		return &memProc{t: target{name: targetSquid, proxyAddr: s.addr}, pid: s.cmd.Process.Pid, stop: func() { s.stop() }}, nil
	}})
	return out, nil
}

// idleErrs counts the connections that could not be opened.
type idleErrs struct {
	n     int64
	first error
}

// measureIdle starts the proxy, leaves it alone for settle and reads its
// resident size and open files, opens n connections with open (16 at a
// time), leaves them idle for settle, reads both again, and returns the
// differences per connection opened.
func measureIdle(s memStarter, u *upstream, n int, settle time.Duration, open func(target, *upstream) (net.Conn, error)) (rss, files float64, errs idleErrs, err error) {
	p, err := s.start()
	if err != nil {
		return 0, 0, idleErrs{}, err
	}
	defer p.stop()
	time.Sleep(settle)
	before, err := residentBytes(p.pid)
	var filesBefore int
	if err == nil {
		filesBefore, err = openFiles(p.pid)
	}
	if err != nil {
		return 0, 0, idleErrs{}, err
	}
	conns := make([]net.Conn, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				c, err := open(p.t, u)
				if err != nil {
					mu.Lock()
					errs.n++
					errs.first = cmp.Or(errs.first, err)
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	opened := int64(n) - errs.n
	if opened == 0 {
		return 0, 0, errs, fmt.Errorf("no connection opened: %w", errs.first)
	}
	time.Sleep(settle)
	after, err := residentBytes(p.pid)
	var filesAfter int
	if err == nil {
		filesAfter, err = openFiles(p.pid)
	}
	if err != nil {
		return 0, 0, errs, err
	}
	return float64(after-before) / float64(opened), float64(filesAfter-filesBefore) / float64(opened), errs, nil
}

// openKeepAlive opens a client connection to the proxy that made one GET
// and may make another.
func openKeepAlive(t target, u *upstream) (net.Conn, error) {
	c, err := t.dialHTTP(u.httpPort)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	keep, err := roundTrip(c, bufio.NewReader(c), t.getRequest(u.httpPort, false))
	if err == nil && !keep {
		err = errors.New("the proxy closed the keep-alive connection")
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// openIdleTunnel opens a tunnel to the echo server that echoed one byte.
func openIdleTunnel(t target, u *upstream) (net.Conn, error) {
	c, err := t.openTunnel(u.echoPort)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	b := [1]byte{'x'}
	if _, err = c.Write(b[:]); err == nil {
		_, err = io.ReadFull(c, b[:])
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("echo through the tunnel: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
