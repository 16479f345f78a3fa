package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// clientTLS is the TLS configuration of the inspect workload's clients:
// name is asked for and must be on the certificate, roots are the only
// CA trusted; HTTP/1.1, no session cache (every connection is a full
// handshake, as a new client's).
func clientTLS(name string, roots *x509.CertPool) *tls.Config {
	return &tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
}

// dialTLS opens a new tunnel to the TLS upstream and completes the
// client's handshake in it.
func (t target) dialTLS() (net.Conn, error) {
	c, err := t.connect(t.tls.authority)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, t.tls.config)
	_ = tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

// tlsRequest is a GET of target on the TLS upstream, Host its name and
// port.
func (t target) tlsRequest(u *upstream, target string) []byte {
	host := net.JoinHostPort(t.tls.config.ServerName, strconv.Itoa(u.httpsPort))
	return []byte("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: regate-load\r\nAccept: */*\r\n" + t.tls.header + "\r\n")
}

// httpsSetup is one new inspected (or tunnelled) request's latency: from
// dialing the proxy, through CONNECT and the client's TLS handshake, to
// the end of the answer to one GET.
func httpsSetup(t target, u *upstream) (time.Duration, error) {
	req := t.tlsRequest(u, "/")
	start := time.Now()
	conn, err := t.dialTLS()
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := roundTrip(conn, bufio.NewReader(conn), req); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// httpsKeepAlive: every client sends GETs one after the other on one TLS
// connection in one tunnel. The connections are opened (tunnel and
// handshake) before the clock starts: a round measures requests, not
// the handshakes of its first 16 (which cost a slow proxy a good part of
// a round); a client whose connection is closed dials anew in the round.
func httpsKeepAlive(t target, u *upstream, clients int, d time.Duration) sample {
	ready := make(chan net.Conn, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			if c, err := t.dialTLS(); err == nil {
				ready <- c
			}
		})
	}
	wg.Wait()
	dial := func() (net.Conn, error) {
		select {
		case c := <-ready:
			return c, nil
		default:
			return t.dialTLS()
		}
	}
	s := keepAliveOn(u, clients, d, dial, t.tlsRequest(u, "/"))
	close(ready)
	for c := range ready {
		_ = c.Close()
	}
	return s
}

// httpsDownload GETs size bytes over a new TLS connection and reads the
// body to its end; the time excludes opening the tunnel and the
// handshake.
func httpsDownload(t target, u *upstream, size int64) sample {
	conn, err := t.dialTLS()
	if err != nil {
		return failed(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	start := time.Now()
	if _, err := conn.Write(t.tlsRequest(u, bulkPath+"?n="+strconv.FormatInt(size, 10))); err != nil {
		return failed(fmt.Errorf("sending request: %w", err))
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, bulkBuf), nil)
	if err != nil {
		return failed(fmt.Errorf("reading response: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return failed(fmt.Errorf("status %s", resp.Status))
	}
	got, err := drain(resp.Body)
	d := time.Since(start)
	switch {
	case err != nil:
		return failed(fmt.Errorf("downloading: %w", err))
	case got != size:
		return failed(fmt.Errorf("received %d of %d bytes", got, size))
	}
	return sample{ops: 1, bytes: size, dur: d}
}
