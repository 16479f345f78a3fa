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

// TestCopyDirBuffered relays several rounds from a connection that does
// not splice, then EOF, byte for byte.
func TestCopyDirBuffered(t *testing.T) {
	p := &Proxy{cfg: Config{IdleTimeout: time.Minute}}
	in, src := net.Pipe()
	dst, out := tcpPair(t)
	want := make([]byte, 3*copyChunk+17)
	_, _ = rand.Read(want)
	go func() {
		_, _ = in.Write(want)
		_ = in.Close()
	}()
	var n, last atomic.Int64
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

// TestCopyDirSpliced relays between TCP sockets a message, bulk (spliced
// rounds), a pause, a message again, then EOF, byte for byte, and the
// idle deadline between them does not end it.
func TestCopyDirSpliced(t *testing.T) {
	p := &Proxy{cfg: Config{IdleTimeout: 50 * time.Millisecond}}
	in, src := tcpPair(t)
	dst, out := tcpPair(t)
	var want []byte
	parts := [][]byte{[]byte("hello"), make([]byte, 3*copyChunk+17), []byte("again")}
	_, _ = rand.Read(parts[1])
	for _, b := range parts {
		want = append(want, b...)
	}
	var n, last atomic.Int64
	last.Store(time.Now().UnixNano())
	go func() {
		for i, b := range parts {
			_, _ = in.Write(b)
			if i == 1 {
				last.Store(time.Now().UnixNano()) // the other direction moved
				time.Sleep(20 * time.Millisecond)
			}
		}
		_ = in.CloseWrite()
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
