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
	for {
		deadline := time.Now().Add(idle)
		_ = src.SetReadDeadline(deadline)
		_ = dst.SetWriteDeadline(deadline)
		k, err := io.CopyN(dst, src, copyChunk) // *net.TCPConn both sides: splice
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
