package proxy

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair is a connected pair of TCP sockets on 127.0.0.1.
func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln := listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accepting failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestCopyRoundSplices: only TCP to TCP keeps io.Copy's splice; anything
// else (a user-space stack's connection) takes the pooled buffer.
func TestCopyRoundSplices(t *testing.T) {
	tcpA, tcpB := tcpPair(t)
	pipeA, pipeB := net.Pipe()
	defer pipeA.Close()
	defer pipeB.Close()
	for _, tc := range []struct {
		name     string
		dst, src net.Conn
		want     bool
	}{
		{"tcp to tcp", tcpA, tcpB, true},
		{"pipe to tcp", tcpA, pipeA, false},
		{"tcp to pipe", pipeA, tcpB, false},
		{"client wrapper unwrapped", rawConn(&clientConn{Conn: tcpA}), tcpB, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := splices(tc.dst, tc.src); got != tc.want {
				t.Errorf("splices = %v, want %v", got, tc.want)
			}
		})
	}
}

// relayParts has copyDir relay parts, written one by one (pause after
// each but the last), from src to dst and then EOF, and checks that dst's
// far end got them byte for byte and that the count agrees. in writes to
// src; closeIn ends it.
func relayParts(t *testing.T, p *Proxy, in, src, dst, out net.Conn, closeIn func(), pause time.Duration, parts ...[]byte) {
	t.Helper()
	var want []byte
	for _, b := range parts {
		want = append(want, b...)
	}
	var n, last atomic.Int64
	last.Store(time.Now().UnixNano())
	go func() {
		for i, b := range parts {
			_, _ = in.Write(b)
			if i < len(parts)-1 && pause > 0 {
				last.Store(time.Now().UnixNano()) // the other direction moved
				time.Sleep(pause)
			}
		}
		closeIn()
	}()
	errc := make(chan error, 1)
	go func() { errc <- p.copyDir(dst, src, &n, &last) }()
	got, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("copyDir: %v", err)
	}
	if !bytes.Equal(got, want) || n.Load() != int64(len(want)) {
		t.Fatalf("relayed %d bytes (counted %d), want %d identical", len(got), n.Load(), len(want))
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestCopyDirBuffered relays several rounds from a connection that does
// not splice, then EOF, byte for byte.
func TestCopyDirBuffered(t *testing.T) {
	p := &Proxy{cfg: Config{IdleTimeout: time.Minute}}
	in, src := net.Pipe()
	dst, out := tcpPair(t)
	relayParts(t, p, in, src, dst, out, func() { _ = in.Close() }, 0, randomBytes(3*copyChunk+17))
}

// TestCopyDirSpliced relays between TCP sockets a message, bulk (spliced
// rounds), a pause, a message again, then EOF, byte for byte, and the
// idle deadline between them does not end it.
func TestCopyDirSpliced(t *testing.T) {
	p := &Proxy{cfg: Config{IdleTimeout: 50 * time.Millisecond}}
	in, src := tcpPair(t)
	dst, out := tcpPair(t)
	relayParts(t, p, in, src, dst, out, func() { _ = in.CloseWrite() }, 20*time.Millisecond,
		[]byte("hello"), randomBytes(3*copyChunk+17), []byte("again"))
}
