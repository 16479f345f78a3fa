package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// h1Client forwards the plain requests that need nothing of net/http's
// Transport but HTTP/1.1 keep-alive: a replayable method (GET, HEAD,
// OPTIONS, TRACE), no body, a direct route. It writes the request and
// reads the response on the handler's goroutine, over pooled upstream
// connections; net/http's Transport hands every request to the two
// goroutines each of its connections runs, three wake-ups per request.
// Everything else (bodies, parents, inspected HTTPS, upgrades) keeps the
// Transport. ARCHITECTURE.md, The pipeline.
//
// The framing is net/http's own (Request.Write, http.ReadResponse). A
// pooled connection is reused only within its host:port (whose addresses
// the guard checked when it was dialled, as the Transport's pool), only
// when the previous response was read to its end and asked for no close,
// and only when nothing arrived while it was idle: peekIdle looks at the
// socket before reuse, so an unsolicited response or the server's close
// is never taken for the next request's answer.
type h1Client struct {
	maxIdle     int           // per host:port, and in all
	idleTimeout time.Duration // an idle connection is closed after it
	maxHeader   int64         // response head bytes

	mu     sync.Mutex
	idle   map[string][]*h1Conn
	nIdle  int
	closed bool
}

// defaultMaxResponseHeader is net/http's Transport default.
const defaultMaxResponseHeader = 10 << 20

func newH1Client(maxIdle int, idleTimeout time.Duration) *h1Client {
	return &h1Client{maxIdle: maxIdle, idleTimeout: idleTimeout, maxHeader: defaultMaxResponseHeader, idle: map[string][]*h1Conn{}}
}

// takes reports whether r goes through the h1Client: a request that can
// be sent again on a new connection when a pooled one turns out closed.
func (t *h1Client) takes(r *http.Request, rt route) bool {
	if !peekSupported || rt.parent != nil || r.URL.Scheme != "http" || (r.Body != nil && r.Body != http.NoBody) || r.ContentLength != 0 {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return len(r.TransferEncoding) == 0
	}
	return false
}

// roundTrip sends r on an idle connection to its host:port, or on one
// dial makes, and returns the response, whose body gives the connection
// back to the pool when read to its end. A pooled connection that fails
// before a response arrives is dropped and the request sent again.
func (t *h1Client) roundTrip(r *http.Request, dial func(context.Context) (net.Conn, error), got func(net.Conn)) (*http.Response, error) {
	key := r.URL.Host
	for {
		pc := t.get(key)
		if pc == nil {
			c, err := dial(r.Context())
			if err != nil {
				return nil, err
			}
			pc = t.newConn(key, c)
		}
		got(pc.c)
		resp, err := pc.roundTrip(r)
		if err == nil {
			return resp, nil
		}
		_ = pc.c.Close()
		if !pc.reused || !pc.nothingRead || r.Context().Err() != nil {
			return nil, err
		}
	}
}

// get takes the most recently idle connection to key that is still
// usable; nil when there is none.
func (t *h1Client) get(key string) *h1Conn {
	for {
		t.mu.Lock()
		conns := t.idle[key]
		if len(conns) == 0 {
			t.mu.Unlock()
			return nil
		}
		pc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		if conns = conns[:len(conns)-1]; len(conns) == 0 {
			delete(t.idle, key)
		} else {
			t.idle[key] = conns
		}
		t.nIdle--
		t.mu.Unlock()
		pc.timer.Stop()
		if peekIdle(pc.c) {
			pc.reused = true
			return pc
		}
		_ = pc.c.Close()
	}
}

// put gives pc back to the pool, or closes it beyond the limits.
func (t *h1Client) put(pc *h1Conn) {
	t.mu.Lock()
	if t.closed || t.nIdle >= t.maxIdle || len(t.idle[pc.key]) >= t.maxIdle {
		t.mu.Unlock()
		_ = pc.c.Close()
		return
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	t.nIdle++
	if pc.timer == nil {
		pc.timer = time.AfterFunc(t.idleTimeout, func() { t.expire(pc) })
	} else {
		pc.timer.Reset(t.idleTimeout)
	}
	t.mu.Unlock()
}

// expire closes pc if it is still idle.
func (t *h1Client) expire(pc *h1Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.remove(pc) {
		_ = pc.c.Close()
	}
}

// remove takes pc out of the idle lists; false when it is not idle.
func (t *h1Client) remove(pc *h1Conn) bool {
	conns := t.idle[pc.key]
	for i, c := range conns {
		if c == pc {
			conns = append(conns[:i], conns[i+1:]...)
			if len(conns) == 0 {
				delete(t.idle, pc.key)
			} else {
				t.idle[pc.key] = conns
			}
			t.nIdle--
			return true
		}
	}
	return false
}

// closeIdle closes every idle connection; none is pooled afterwards.
func (t *h1Client) closeIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, conns := range t.idle {
		for _, pc := range conns {
			if pc.timer != nil {
				pc.timer.Stop()
			}
			_ = pc.c.Close()
		}
	}
	clear(t.idle)
	t.nIdle = 0
}

// h1Conn is one upstream connection of the h1Client.
type h1Conn struct {
	t     *h1Client
	key   string
	c     net.Conn
	lr    limitedConn
	br    *bufio.Reader
	bw    *bufio.Writer
	timer *time.Timer // closes it when idle too long

	reused      bool // taken from the pool
	nothingRead bool // no byte of the response arrived: the request may be sent again
}

func (t *h1Client) newConn(key string, c net.Conn) *h1Conn {
	pc := &h1Conn{t: t, key: key, c: c}
	pc.lr = limitedConn{Conn: c, n: math.MaxInt64}
	pc.br = bufio.NewReader(&pc.lr)
	pc.bw = bufio.NewWriter(c)
	return pc
}

// aLongTimeAgo is a deadline that makes blocked reads and writes return.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes r and reads its response head, cut by r's context.
func (pc *h1Conn) roundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	stop := context.AfterFunc(ctx, func() { _ = pc.c.SetDeadline(aLongTimeAgo) })
	pc.nothingRead = true
	resp, err := pc.exchange(r)
	if err != nil {
		stop()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	if resp.Body == http.NoBody {
		pc.done(stop, resp.Close)
		return resp, nil
	}
	resp.Body = &h1Body{body: resp.Body, pc: pc, stop: stop, close: resp.Close, ctx: ctx}
	return resp, nil
}

// exchange writes r and reads the final response's head (1xx answers
// other than 101 are skipped, as net/http's Transport does).
func (pc *h1Conn) exchange(r *http.Request) (*http.Response, error) {
	if err := r.Write(pc.bw); err != nil {
		return nil, fmt.Errorf("writing request: %w", err)
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, fmt.Errorf("writing request: %w", err)
	}
	for range 5 {
		pc.lr.n = pc.t.maxHeader
		if _, err := pc.br.Peek(1); err != nil {
			return nil, fmt.Errorf("reading response: %w", err)
		}
		pc.nothingRead = false
		resp, err := http.ReadResponse(pc.br, r)
		pc.lr.n = math.MaxInt64
		if err != nil {
			return nil, fmt.Errorf("reading response: %w", err)
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("reading response: 101 Switching Protocols to a request that asked for no upgrade")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue
		}
		return resp, nil
	}
	return nil, errors.New("reading response: too many 1xx responses")
}

// done ends an exchange whose body was read to its end: the connection
// goes back to the pool unless the response asked to close it, the
// context fired, or more bytes than the response arrived.
func (pc *h1Conn) done(stop func() bool, closing bool) {
	if !stop() || closing || pc.br.Buffered() > 0 {
		_ = pc.c.Close()
		return
	}
	pc.t.put(pc)
}

// h1Body is a response body of the h1Client: at its end the connection is
// given back; closed before its end, or on a read error, the connection is
// closed. Close does not wait for a Read in progress: closing the
// connection is what ends it.
type h1Body struct {
	body  io.ReadCloser
	pc    *h1Conn
	stop  func() bool
	close bool
	ctx   context.Context
	once  sync.Once // the exchange ends once: given back or closed
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.once.Do(func() { b.pc.done(b.stop, b.close) })
	case err != nil:
		if b.ctx.Err() != nil {
			err = b.ctx.Err()
		}
		b.end()
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.end()
	return nil
}

// end closes the connection, unless the exchange already ended.
func (b *h1Body) end() {
	b.once.Do(func() {
		b.stop()
		_ = b.pc.c.Close()
	})
}

// limitedConn bounds what a response head may read: net/http's
// Transport's MaxResponseHeaderBytes.
type limitedConn struct {
	net.Conn
	n int64
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("response head too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.Conn.Read(p)
	l.n -= int64(n)
	return n, err
}
