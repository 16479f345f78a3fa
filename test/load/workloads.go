package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// sample is what one run of a workload against one target did.
type sample struct {
	ops        int64 // successful requests or transfers
	bytes      int64 // payload bytes moved (bulk)
	dur        time.Duration
	errs       int64
	reconnects int64 // keep-alive connections the server closed
	upConns    int64 // connections the upstream accepted (GET workloads)
	firstErr   error
}

// counter collects a sample from concurrent clients.
type counter struct {
	ops, errs, reconnects atomic.Int64
	mu                    sync.Mutex
	firstErr              error
}

func (c *counter) fail(err error) {
	c.errs.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firstErr == nil {
		c.firstErr = err
	}
}

func (c *counter) sample(d time.Duration) sample {
	return sample{ops: c.ops.Load(), errs: c.errs.Load(), reconnects: c.reconnects.Load(), dur: d, firstErr: c.firstErr}
}

// runClients runs client on n goroutines until the deadline d from now,
// and counts the connections the upstream accepted meanwhile.
func runClients(u *upstream, n int, d time.Duration, client func(deadline time.Time, c *counter)) sample {
	var c counter
	var wg sync.WaitGroup
	conns := u.httpConns.Load()
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		wg.Go(func() { client(deadline, &c) })
	}
	wg.Wait()
	s := c.sample(time.Since(start))
	s.upConns = u.httpConns.Load() - conns
	return s
}

// keepAlive: every client sends GETs one after the other on one
// keep-alive connection.
func keepAlive(t target, u *upstream, clients int, d time.Duration) sample {
	dial := func() (net.Conn, error) { return t.dialHTTP(u.httpPort) }
	return keepAliveOn(u, clients, d, dial, t.getRequest(u.httpPort, false))
}

// keepAliveOn: every client sends req one after the other on one
// keep-alive connection that dial opens.
func keepAliveOn(u *upstream, clients int, d time.Duration, dial func() (net.Conn, error), req []byte) sample {
	return runClients(u, clients, d, func(deadline time.Time, c *counter) {
		var conn net.Conn
		var br *bufio.Reader
		defer func() {
			if conn != nil {
				_ = conn.Close()
			}
		}()
		for time.Now().Before(deadline) {
			if conn == nil {
				var err error
				if conn, err = dial(); err != nil {
					c.fail(err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				_ = conn.SetDeadline(deadline.Add(ioTimeout))
				br = bufio.NewReader(conn)
			}
			keep, err := roundTrip(conn, br, req)
			if err != nil {
				c.fail(err)
			} else {
				c.ops.Add(1)
			}
			if err != nil || !keep {
				if err == nil {
					c.reconnects.Add(1)
				}
				_ = conn.Close()
				conn = nil
			}
		}
	})
}

// newConnection: every request on its own TCP connection (what a client
// with keep-alives disabled does).
func newConnection(t target, u *upstream, clients int, d time.Duration) sample {
	req := t.getRequest(u.httpPort, true)
	return runClients(u, clients, d, func(deadline time.Time, c *counter) {
		br := bufio.NewReader(nil)
		for time.Now().Before(deadline) {
			conn, err := t.dialHTTP(u.httpPort)
			if err != nil {
				c.fail(err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			_ = conn.SetDeadline(time.Now().Add(ioTimeout))
			br.Reset(conn)
			if _, err := roundTrip(conn, br, req); err != nil {
				c.fail(err)
			} else {
				c.ops.Add(1)
			}
			_ = conn.Close()
		}
	})
}

// roundTrip sends one GET and reads its answer; keep reports whether the
// connection may carry another request.
func roundTrip(conn net.Conn, br *bufio.Reader, req []byte) (keep bool, err error) {
	if _, err := conn.Write(req); err != nil {
		return false, fmt.Errorf("sending request: %w", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, fmt.Errorf("reading response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return false, fmt.Errorf("reading response body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %s", resp.Status)
	}
	return !resp.Close, nil
}

// upload streams size bytes to the sink and waits for its count; the time
// excludes opening the tunnel.
func upload(t target, u *upstream, size int64) sample {
	conn, err := t.openTunnel(u.sinkPort)
	if err != nil {
		return failed(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	start := time.Now()
	if _, err := conn.Write(bulkRequest(uploadCmd, size)); err != nil {
		return failed(fmt.Errorf("requesting upload: %w", err))
	}
	if _, err := writeN(conn, size); err != nil {
		return failed(fmt.Errorf("uploading: %w", err))
	}
	var b [8]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return failed(fmt.Errorf("reading the sink's count: %w", err))
	}
	d := time.Since(start)
	if got := int64(binary.BigEndian.Uint64(b[:])); got != size {
		return failed(fmt.Errorf("sink received %d of %d bytes", got, size))
	}
	return sample{ops: 1, bytes: size, dur: d}
}

// download asks the source for size bytes and reads them to EOF; the time
// excludes opening the tunnel.
func download(t target, u *upstream, size int64) sample {
	conn, err := t.openTunnel(u.sourcePort)
	if err != nil {
		return failed(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	start := time.Now()
	if _, err := conn.Write(bulkRequest(downloadCmd, size)); err != nil {
		return failed(fmt.Errorf("requesting download: %w", err))
	}
	got, err := drain(conn)
	d := time.Since(start)
	if err != nil {
		return failed(fmt.Errorf("downloading: %w", err))
	}
	if got != size {
		return failed(fmt.Errorf("received %d of %d bytes", got, size))
	}
	return sample{ops: 1, bytes: size, dur: d}
}

func failed(err error) sample { return sample{errs: 1, firstErr: err} }

// connectSetup is one new tunnel's latency: from dialing (the proxy, or
// the upstream directly) until the upstream's echo of a first byte is
// back. It is what a client waits before its first answer byte.
func connectSetup(t target, u *upstream) (time.Duration, error) {
	start := time.Now()
	conn, err := t.openTunnel(u.echoPort)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	var b = [1]byte{'x'}
	if _, err := conn.Write(b[:]); err != nil {
		return 0, fmt.Errorf("writing first byte: %w", err)
	}
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return 0, fmt.Errorf("reading echo: %w", err)
	}
	d := time.Since(start)
	if b[0] != 'x' {
		return 0, errors.New("echo returned another byte")
	}
	return d, nil
}
