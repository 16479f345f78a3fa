package main

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// bulkBuf is the read and write size of bulk transfers (client and
// upstream alike): large enough that syscalls do not dominate.
const bulkBuf = 256 << 10

// Bulk requests start with a command byte, then the length as a
// big-endian uint64. Neither is 0x16, so a proxy's TLS check lets them
// pass. An upload's bytes follow its request; the sink answers its count
// without waiting for a half-close (Squid closes a tunnel on the first
// EOF).
const (
	uploadCmd   = 'U'
	downloadCmd = 'D'
)

// upstream is the local destination of every workload: an HTTP server for
// the GET workloads, and raw TCP servers for the tunnels: an echo (setup
// latency), a sink (upload) and a source (download); for the inspect
// workload and the new TLS connections of the proxy workloads, the same
// HTTP server over TLS too (startTLS).
type upstream struct {
	http   *http.Server
	https  []*http.Server // started by startTLS
	body   []byte         // the answer to a GET
	lns    []net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool

	httpPort, echoPort, sinkPort, sourcePort int
	httpsPort                                int          // the inspect workload's TLS port
	httpConns                                atomic.Int64 // HTTP and HTTPS connections accepted
}

// bulkPath answers a GET with as many bytes as its query's n asks (the
// inspect workload's download).
const bulkPath = "/bulk"

// startUpstream listens on 127.0.0.1 ephemeral ports; the GET body is
// bodySize bytes.
func startUpstream(bodySize int) (*upstream, error) {
	u := &upstream{conns: map[net.Conn]struct{}{}}
	body := make([]byte, bodySize)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	u.body = body
	u.http = u.server()
	ports := []*int{&u.httpPort, &u.echoPort, &u.sinkPort, &u.sourcePort}
	serve := []func(net.Conn){nil, serveEcho, serveSink, serveSource}
	for i, port := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			u.close()
			return nil, fmt.Errorf("listening for the upstream: %w", err)
		}
		u.lns = append(u.lns, ln)
		*port = ln.Addr().(*net.TCPAddr).Port
		if serve[i] == nil {
			u.wg.Go(func() { _ = u.http.Serve(ln) })
			continue
		}
		u.wg.Go(func() { u.acceptLoop(ln, serve[i]) })
	}
	return u, nil
}

// server is the HTTP server of the GET workloads: body to any GET but a
// bulk one; it counts the connections it accepts.
func (u *upstream) server() *http.Server {
	body, clen := u.body, strconv.Itoa(len(u.body))
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			if r.URL.Path == bulkPath {
				serveBulk(w, r)
				return
			}
			w.Header().Set("Content-Length", clen)
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				u.httpConns.Add(1)
			}
		},
	}
}

// serveBulk answers n bytes of fill, n from the query.
func serveBulk(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "bad n", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	_, _ = writeN(w, n)
}

// startTLS serves the same answers over TLS (HTTP/2 and HTTP/1.1) with
// cert on one more ephemeral port, which it returns.
func (u *upstream) startTLS(cert tls.Certificate) (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listening for the TLS upstream: %w", err)
	}
	u.lns = append(u.lns, ln)
	srv := u.server()
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	u.https = append(u.https, srv)
	u.wg.Go(func() { _ = srv.ServeTLS(ln, "", "") })
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (u *upstream) acceptLoop(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !u.track(c, true) {
			_ = c.Close()
			return
		}
		u.wg.Go(func() {
			defer u.track(c, false)
			defer c.Close()
			serve(c)
		})
	}
}

// track adds or removes a raw connection; false once closed.
func (u *upstream) track(c net.Conn, add bool) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !add {
		delete(u.conns, c)
		return true
	}
	if u.closed {
		return false
	}
	u.conns[c] = struct{}{}
	return true
}

// close stops every server and waits for their goroutines.
func (u *upstream) close() {
	_ = u.http.Close()
	for _, srv := range u.https {
		_ = srv.Close()
	}
	for _, ln := range u.lns {
		_ = ln.Close()
	}
	u.mu.Lock()
	u.closed = true
	for c := range u.conns {
		_ = c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// serveEcho writes back what it reads.
func serveEcho(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// bulkRequest builds a bulk request head.
func bulkRequest(cmd byte, size int64) []byte {
	b := make([]byte, 9)
	b[0] = cmd
	binary.BigEndian.PutUint64(b[1:], uint64(size))
	return b
}

// readBulkRequest reads a request head with the expected command.
func readBulkRequest(c net.Conn, cmd byte) (int64, bool) {
	var req [9]byte
	if _, err := io.ReadFull(c, req[:]); err != nil || req[0] != cmd {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(req[1:])), true
}

// serveSink reads an upload's announced bytes, then answers the count
// received (uint64).
func serveSink(c net.Conn) {
	size, ok := readBulkRequest(c, uploadCmd)
	if !ok {
		return
	}
	n, _ := drain(io.LimitReader(c, size))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	_, _ = c.Write(b[:])
}

// serveSource answers a download request with that many bytes, then
// closes.
func serveSource(c net.Conn) {
	if size, ok := readBulkRequest(c, downloadCmd); ok {
		_, _ = writeN(c, size)
	}
}

// drain reads r to EOF in bulkBuf reads and returns the count.
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, bulkBuf)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fill is the payload of bulk transfers; its first byte is not a TLS
// handshake record type.
var fill = func() []byte {
	b := make([]byte, bulkBuf)
	for i := range b {
		b[i] = byte('U' + i%7)
	}
	return b
}()

// writeN writes n bytes of fill in bulkBuf writes.
func writeN(w io.Writer, n int64) (int64, error) {
	var done int64
	for done < n {
		k, err := w.Write(fill[:min(int64(len(fill)), n-done)])
		done += int64(k)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
