package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// tlsUpstream is the TLS server of the connect-tls workload: the
// upstream's answers on their own port, with a certificate for
// upstreamName from a CA of the run's, and the client configuration that
// trusts that CA alone.
type tlsUpstream struct {
	port   int
	client *tls.Config
}

// startTLSUpstream issues the certificate and starts the server.
func startTLSUpstream(u *upstream) (*tlsUpstream, error) {
	ca, err := newCertAuthority("regate load TLS upstream CA")
	if err != nil {
		return nil, err
	}
	leaf, err := ca.leaf(upstreamName)
	if err != nil {
		return nil, err
	}
	port, err := u.startTLS(leaf)
	if err != nil {
		return nil, err
	}
	// No session cache: every connection is a full handshake, as a new
	// client's.
	return &tlsUpstream{port: port, client: clientTLS(upstreamName, ca.pool())}, nil
}

// request is a GET of the TLS upstream's root that asks to close.
func (s *tlsUpstream) request() []byte {
	host := net.JoinHostPort(upstreamName, strconv.Itoa(s.port))
	return []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: regate-load\r\nConnection: close\r\n\r\n")
}

// firstByte is one new TLS connection's latency: from dialing (the proxy,
// or the upstream directly), through the tunnel's setup and the client's
// TLS handshake with the upstream, to the first byte of the answer to a
// GET. It is what a client of an HTTPS site waits before its first
// answer byte.
func (s *tlsUpstream) firstByte(t target, req []byte) (time.Duration, error) {
	start := time.Now()
	c, err := t.openTunnel(s.port)
	if err != nil {
		return 0, err
	}
	tc := tls.Client(c, s.client)
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		return 0, fmt.Errorf("TLS handshake: %w", err)
	}
	if _, err := tc.Write(req); err != nil {
		return 0, fmt.Errorf("sending request: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		return 0, fmt.Errorf("reading the answer: %w", err)
	}
	d := time.Since(start)
	if b[0] != 'H' {
		return 0, errors.New("the answer is not HTTP")
	}
	return d, nil
}
