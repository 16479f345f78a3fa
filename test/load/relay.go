package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// relay is the floor of what a CONNECT proxy costs on this machine: it
// answers CONNECT to 127.0.0.1 with no policy, no guard and no log, then
// relays with io.Copy (splice) both ways. regate's tunnel rows are best
// read against it: the gap between relay and direct is the extra hop.
type relay struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startRelay() (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, conns: map[net.Conn]struct{}{}}
	r.wg.Go(r.acceptLoop)
	return r, nil
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) acceptLoop() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns[c] = struct{}{}
		r.mu.Unlock()
		r.wg.Go(func() {
			r.serve(c)
			r.mu.Lock()
			delete(r.conns, c)
			r.mu.Unlock()
		})
	}
}

// serve answers one CONNECT (the port is kept, the host is 127.0.0.1).
func (r *relay) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect || br.Buffered() > 0 {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	_, port, err := net.SplitHostPort(req.RequestURI)
	if err != nil {
		return
	}
	up, err := net.DialTimeout("tcp", "127.0.0.1:"+port, ioTimeout)
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(c, up)
		_ = closeWrite(c)
	})
	_, _ = io.Copy(up, c)
	_ = closeWrite(up)
	wg.Wait()
}

// close stops accepting, cuts open tunnels and waits.
func (r *relay) close() {
	_ = r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
