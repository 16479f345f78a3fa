package proxy

import (
	"bytes"
	"errors"
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
	if end < 0 {
		if len(b) >= maxSniffLine {
			return sniffHTTP, false
		}
		return sniffRaw, true
	}
	line := bytes.TrimSuffix(b[:end], []byte("\r"))
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
// already read) until it can tell what they start. Waiting for the first
// byte is bounded by the idle timeout (renewed while the upstream talks:
// server-first protocols); once they have begun, by TLSPeekTimeout, after
// which bytes that could still begin a request are taken as HTTP (fail
// closed). It returns every byte read; an error only when nothing could be
// read.
func (p *Proxy) sniff(client net.Conn, pre []byte, last *atomic.Int64) ([]byte, sniffKind, error) {
	buf := append(make([]byte, 0, max(len(pre), 4096)), pre...)
	if len(buf) == 0 {
		first, err := p.readFirst(client, last)
		if len(first) == 0 {
			return nil, sniffRaw, err
		}
		buf = append(buf, first...)
	}
	kind, more := classifyFirst(buf)
	if !more {
		return buf, kind, nil
	}
	_ = client.SetReadDeadline(time.Now().Add(p.cfg.TLSPeekTimeout))
	defer client.SetReadDeadline(time.Time{})
	tmp := make([]byte, 4096)
	for more && len(buf) <= maxSniffLine {
		n, err := client.Read(tmp[:min(len(tmp), maxSniffLine+1-len(buf))])
		buf = append(buf, tmp[:n]...)
		if kind, more = classifyFirst(buf); !more {
			break
		}
		if err != nil && n == 0 {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// A client that stops before it can be told from HTTP is
				// taken as HTTP: waiting out the timeout must not turn a
				// request into a raw tunnel.
				return buf, sniffHTTP, nil
			}
			break // the client closed: what it sent is relayed as it is
		}
	}
	return buf, kind, nil
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
