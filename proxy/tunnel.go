package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var errTooManyTunnels = errors.New("too many open tunnels")

// copyChunk bounds one splice round, so that deadlines are renewed while
// data flows.
const copyChunk = 256 << 10

// tunnel relays client ↔ upstream for an allowed flow. Upstream bytes flow
// at once (server-first protocols are not delayed); the client's first
// bytes are sniffed before anything of them is forwarded: a TLS
// ClientHello gets the SNI check, an HTTP/1.x request line makes the
// tunnel plain HTTP (every request decided), cleartext HTTP/2 is cut,
// anything else is relayed. It closes both connections and returns why the
// tunnel ended (nil when both sides closed cleanly). The caller tracks
// client for Shutdown.
func (p *Proxy) tunnel(f *flow, client net.Conn, pre []byte, up net.Conn) error {
	defer client.Close()
	defer up.Close()
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	rawClient, rawUp := rawConn(client), rawConn(up)
	var wg sync.WaitGroup
	var downErr error
	var switched atomic.Bool // the tunnel became plain HTTP: up is closed on purpose
	wg.Go(func() {
		downErr = p.copyDir(rawClient, rawUp, &f.down, &last)
		if downErr != nil && !switched.Load() {
			_ = client.Close()
			_ = up.Close()
		}
	})
	first, kind, more, err := p.sniff(client, pre, &last)
	switch {
	case more: // relayed at once; the rest of the first line is watched
		if err = p.writeUp(f, rawUp, first, &last); err == nil {
			err = p.watchFirstLine(f, rawUp, rawClient, first, &last)
		}
		first = nil
	case kind == sniffHTTP:
		switched.Store(true)
		_ = up.Close()
		wg.Wait()
		return p.serveTunnelHTTP(f, client, first)
	case kind == sniffHTTP2:
		first, err = nil, p.httpCheckDeny(f, "cleartext HTTP/2 inside a tunnel cannot be checked")
	case kind == sniffTLS:
		first, err = p.checkHello(f, client, first)
	}
	upErr := p.relayUp(f, rawUp, rawClient, first, err, &last)
	if upErr != nil {
		_ = client.Close()
		_ = up.Close()
	}
	wg.Wait()
	return errors.Join(upErr, downErr)
}

// relayUp forwards the sniffed first bytes (unless sniffing failed with
// err), then copies client → upstream.
func (p *Proxy) relayUp(f *flow, rawUp, rawClient net.Conn, first []byte, err error, last *atomic.Int64) error {
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := p.writeUp(f, rawUp, first, last); err != nil {
		return err
	}
	if errors.Is(err, io.EOF) {
		closeWrite(rawUp)
		return nil
	}
	return p.copyDir(rawUp, rawClient, &f.up, last)
}

// writeUp forwards client bytes the proxy read itself.
func (p *Proxy) writeUp(f *flow, rawUp net.Conn, b []byte, last *atomic.Int64) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := rawUp.Write(b); err != nil {
		return fmt.Errorf("writing upstream: %w", err)
	}
	f.up.Add(int64(len(b)))
	last.Store(time.Now().UnixNano())
	return nil
}

// copyDir copies src → dst until EOF (then half-closes dst) or an error.
// The idle timeout ends it only when neither direction moved for that long.
func (p *Proxy) copyDir(dst, src net.Conn, n, last *atomic.Int64) error {
	idle := p.cfg.IdleTimeout
	var small []byte
	if !splices(dst, src) {
		small = make([]byte, smallBuf)
	}
	bulk := false // the last round moved a whole copyChunk
	for {
		deadline := time.Now().Add(idle)
		_ = src.SetReadDeadline(deadline)
		_ = dst.SetWriteDeadline(deadline)
		k, err := copyRound(dst, src, small, bulk)
		bulk = k == copyChunk
		if k > 0 {
			n.Add(k)
			last.Store(time.Now().UnixNano())
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			closeWrite(dst)
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && !idleFor(last, idle):
		default:
			return fmt.Errorf("relaying: %w", err)
		}
	}
}

// copyRound copies up to copyChunk bytes src → dst: spliced in the kernel
// when both are TCP sockets (spliceRound; straight away while the flow is
// bulk, after a round that moved a whole copyChunk); else (a flow of the isolated command's
// user-space stack, a parent proxy's TLS) through buffers. small is the
// flow's own buffer, which an idle read waits on; a round that fills it
// goes on through a pooled buffer of the rest of the round, so that bulk
// data moves in large pieces without a buffer allocated per round (as
// io.Copy would) or a large one held by every idle flow.
func copyRound(dst, src net.Conn, small []byte, bulk bool) (int64, error) {
	switch {
	case splices(dst, src) && bulk:
		return io.CopyN(dst, src, copyChunk)
	case splices(dst, src):
		return spliceRound(dst, src)
	}
	n, err := copyBuffer(dst, src, small, true)
	if err != nil || n < int64(len(small)) {
		return n, err
	}
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	m, err := copyBuffer(dst, src, (*bp)[:copyChunk-n], false)
	return n + m, err
}

// spliceRound is copyRound between two TCP sockets. It waits for src
// without a buffer or a pipe (an idle tunnel holds its two sockets only,
// as Squid's does), then reads what came through a pooled small buffer: a
// message (a TLS record, an echo) goes on with one read and one write.
// A read that fills the buffer is bulk, and the rest of the round is
// spliced in the kernel.
func spliceRound(dst, src net.Conn) (int64, error) {
	if err := waitReadable(src); err != nil {
		return 0, err
	}
	bp := smallBufs.Get().(*[]byte)
	n, err := copyBuffer(dst, src, *bp, true)
	smallBufs.Put(bp)
	if err != nil || n < int64(len(*bp)) {
		return n, err
	}
	m, err := io.CopyN(dst, src, copyChunk-n)
	return n + m, err
}

// smallBufs are spliceRound's buffers, taken only while a message moves.
var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}

// splices reports whether io.Copy from src to dst splices (Linux).
func splices(dst, src net.Conn) bool {
	_, d := dst.(*net.TCPConn)
	_, s := src.(*net.TCPConn)
	return d && s
}

// smallBuf is the size of a relayed flow's own buffer (copyRound).
const smallBuf = 16 << 10

// relayBufs are copyRound's large buffers, taken only while data flows.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, copyChunk); return &b }}

// copyBuffer copies from src to dst through buf, once (one read) or until
// len(buf) bytes are copied, EOF (returned as io.EOF) or an error.
func copyBuffer(dst io.Writer, src io.Reader, buf []byte, once bool) (int64, error) {
	var n int64
	for n < int64(len(buf)) {
		k, rerr := src.Read(buf[:len(buf)-int(n)])
		if k > 0 {
			w, werr := dst.Write(buf[:k])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
			if w != k {
				return n, io.ErrShortWrite
			}
		}
		if rerr != nil || once {
			return n, rerr
		}
	}
	return n, nil
}

// idleFor reports whether the tunnel has been idle for d.
func idleFor(last *atomic.Int64, d time.Duration) bool {
	return time.Since(time.Unix(0, last.Load())) >= d
}

// rawConn unwraps a client connection to its *net.TCPConn so that io.Copy
// can splice.
func rawConn(c net.Conn) net.Conn {
	if cc, ok := c.(*clientConn); ok {
		if tc := cc.tcp(); tc != nil {
			return tc
		}
		return cc.Conn
	}
	return c
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
