package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// What a tunnel's first client bytes start. One sniffing component serves
// every source: HTTP CONNECT, SOCKS5 and transparent flows.
type sniffKind int

const (
	sniffRaw   sniffKind = iota // anything else: relayed as it is
	sniffTLS                    // a TLS handshake: the SNI check (sni.go)
	sniffHTTP                   // an HTTP/1.x request line: served as plain HTTP (tunnelhttp.go)
	sniffHTTP2                  // cleartext HTTP/2 (prior knowledge): cannot be checked
)

// maxSniffLine bounds how much of a first request line is buffered.
const maxSniffLine = 8 << 10

// h2Preface starts a cleartext HTTP/2 connection with prior knowledge.
var h2Preface = []byte("PRI * HTTP/2.0\r\n")

// classifyFirst says what b, the first client bytes of a tunnel, start;
// more is true when it cannot tell yet. A request line is
// "TOKEN SP TARGET SP HTTP/…" after optional empty lines (which servers
// skip, RFC 9112 §2.2). A line that is complete and has no HTTP version is
// not HTTP (SMTP, Redis, …); a first line that stays incomplete past
// maxSniffLine after "TOKEN SP" is taken as HTTP, so that the HTTP server
// refuses it rather than a raw tunnel passing it (fail closed).
func classifyFirst(b []byte) (kind sniffKind, more bool) {
	if len(b) == 0 {
		return sniffRaw, true
	}
	if b[0] == recordTypeHandshake {
		return sniffTLS, false
	}
	b = bytes.TrimLeft(b, "\r\n")
	if len(b) == 0 {
		return sniffRaw, true
	}
	if n := min(len(b), len(h2Preface)); bytes.Equal(b[:n], h2Preface[:n]) {
		if n < len(h2Preface) {
			return sniffRaw, true
		}
		return sniffHTTP2, false
	}
	method := 0
	for method < len(b) && isTokenChar(b[method]) {
		method++
	}
	switch {
	case method == len(b):
		return sniffRaw, method < 32 // a method is short
	case method == 0 || method > 32 || b[method] != ' ':
		return sniffRaw, false
	}
	end := bytes.IndexByte(b, '\n')
	line := b
	if end >= 0 {
		line = b[:end]
	}
	for _, c := range bytes.TrimSuffix(line, []byte("\r")) {
		if c < 0x20 || c == 0x7f {
			return sniffRaw, false // no request line holds a control character
		}
	}
	if end < 0 {
		if len(b) >= maxSniffLine {
			return sniffHTTP, false
		}
		return sniffRaw, true
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	sp := bytes.LastIndexByte(line, ' ')
	if sp <= method || !bytes.HasPrefix(line[sp+1:], []byte("HTTP/")) {
		return sniffRaw, false
	}
	return sniffHTTP, false
}

// isTokenChar reports whether c may be in an HTTP token (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// sniff reads the client's first bytes of a tunnel (pre: bytes the source
// already read) and says what they start; undecided (more) when they could
// still begin a request line. Waiting for the first byte is bounded by the
// idle timeout, renewed while the upstream talks (server-first protocols).
// Nothing waits for more bytes: undecided bytes are relayed at once and the
// rest of the first line is watched (watchFirstLine). It returns an error
// only when nothing could be read.
func (p *Proxy) sniff(client net.Conn, pre []byte, last *atomic.Int64) (buf []byte, kind sniffKind, more bool, err error) {
	buf = pre
	if len(buf) == 0 {
		if buf, err = p.readFirst(client, last); len(buf) == 0 {
			return nil, sniffRaw, false, err
		}
	}
	kind, more = classifyFirst(buf)
	return buf, kind, more, nil
}

// watchFirstLine relays client → upstream while the first line of a tunnel
// is still undecided (seen holds what was already relayed of it). Each
// chunk is classified with all that came before it; a chunk that completes
// an HTTP request line (or the HTTP/2 preface) is not relayed and the
// tunnel is cut: upstream never receives a whole request it did not get
// decided. That is the price of relaying without waiting: an HTTP client
// that splits its request line across writes inside a tunnel is cut. Once
// the line is decided otherwise, it returns and the plain copy goes on.
func (p *Proxy) watchFirstLine(f *flow, rawUp, rawClient net.Conn, seen []byte, last *atomic.Int64) error {
	seen = append([]byte(nil), seen...)
	buf := make([]byte, 4096)
	for {
		_ = rawClient.SetReadDeadline(time.Now().Add(p.cfg.IdleTimeout))
		n, err := rawClient.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			seen = append(seen, buf[:n]...)
			kind, more := classifyFirst(seen)
			if !more && (kind == sniffHTTP || kind == sniffHTTP2) {
				return p.httpCheckDeny(f, "an HTTP request split across writes inside a tunnel cannot be checked")
			}
			if _, werr := rawUp.Write(buf[:n]); werr != nil {
				return fmt.Errorf("writing upstream: %w", werr)
			}
			f.up.Add(int64(n))
			if !more {
				return nil
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && !idleFor(last, p.cfg.IdleTimeout):
		case errors.Is(err, io.EOF):
			closeWrite(rawUp)
			return io.EOF
		default:
			return fmt.Errorf("relaying: %w", err)
		}
	}
}

// readFirst waits for the client's first bytes; while only the upstream
// talks (server-first protocols) the idle timeout does not end the wait.
func (p *Proxy) readFirst(client net.Conn, last *atomic.Int64) ([]byte, error) {
	buf := make([]byte, 4096)
	for {
		_ = client.SetReadDeadline(time.Now().Add(p.cfg.IdleTimeout))
		n, err := client.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			return buf[:n], nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !idleFor(last, p.cfg.IdleTimeout) {
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
}
