package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"
)

// upstreamName is the destination name every proxy is asked for; each
// proxy pins it to 127.0.0.1 (regate: Hosts, Squid: hosts_file).
const upstreamName = "upstream.load.test"

// Target names, in table order.
const (
	targetDirect = "direct"
	// targetRegateBin is `regate serve` as its own process, the headline;
	// targetRegate is regate in this tool's process (a diagnostic: it
	// shares the scheduler with the clients and the upstream).
	targetRegateBin = "serve"
	targetRegate    = "in-process"
	targetSquid     = "squid"
	targetRelay     = "relay"
	// The sandbox's paths: CONNECT through the HTTP proxy variable, and a
	// plain dial of the name through the TUN link.
	targetIsolateProxy = "isolate-proxy"
	targetTransparent  = "transparent"
)

// ioTimeout bounds every client read and write, so that a stuck proxy
// fails a workload instead of hanging the run.
const ioTimeout = 30 * time.Second

// target is where a workload's clients connect: straight to the upstream,
// or through a proxy at proxyAddr.
type target struct {
	name       string
	proxyAddr  string // "" for direct
	proxyAuth  string // Proxy-Authorization of a CONNECT, "" for none
	byName     bool   // direct to upstreamName, not 127.0.0.1 (the sandbox resolves it)
	tunnelOnly bool   // serves CONNECT only (the reference relay)
	served     bool   // `regate serve` as its own process: the goals judge it
	socks      bool   // a SOCKS5 proxy: tunnels are SOCKS5 CONNECTs
	socksAddr  string // regate's SOCKS5 listener, for the SOCKS5 workloads
	socksIP    bool   // a SOCKS5 proxy asked for 127.0.0.1, not the name (it cannot pin one)
	inner      *inner // the client process that runs this target's workloads (transparent)
	tls        *tlsPath
}

// tlsPath is how a target of the inspect workload reaches the TLS
// upstream: the CONNECT authority (host:port), and the client's TLS
// configuration there: the name it asks for (SNI, and Host) and the one
// CA it trusts — the upstream's through a plain tunnel, the inspecting
// proxy's otherwise — so that a path which is not what its name says
// fails its handshake.
type tlsPath struct {
	authority string
	config    *tls.Config
	header    string // more header lines of every request ("Name: value\r\n")
}

func (t target) direct() bool { return t.proxyAddr == "" }

// upstreamAddr is the upstream's port as a direct client dials it.
func (t target) upstreamAddr(port int) string {
	host := "127.0.0.1"
	if t.byName {
		host = upstreamName
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// getRequest is the GET head this target expects: origin-form directly,
// absolute-form through a proxy. close asks for a new connection per
// request.
func (t target) getRequest(port int, close bool) []byte {
	host := upstreamName + ":" + strconv.Itoa(port)
	uri := "http://" + host + "/"
	if t.direct() {
		host, uri = "127.0.0.1:"+strconv.Itoa(port), "/"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: regate-load\r\nAccept: */*\r\n", uri, host)
	if close {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// dialHTTP connects to the proxy, or to the upstream's HTTP port.
func (t target) dialHTTP(port int) (net.Conn, error) {
	addr := t.proxyAddr
	if t.direct() {
		addr = "127.0.0.1:" + strconv.Itoa(port)
	}
	return net.DialTimeout("tcp", addr, ioTimeout)
}

// openTunnel returns a byte stream to the upstream's raw port: a direct
// TCP connection, a CONNECT tunnel through the proxy (answered 200), or a
// SOCKS5 one.
func (t target) openTunnel(port int) (net.Conn, error) {
	if t.direct() {
		return net.DialTimeout("tcp", t.upstreamAddr(port), ioTimeout)
	}
	if t.socks {
		return t.socksConnect(port)
	}
	return t.connect(net.JoinHostPort(upstreamName, strconv.Itoa(port)))
}

// connect opens a CONNECT tunnel to hostport through the proxy.
func (t target) connect(hostport string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", t.proxyAddr, ioTimeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	head := "CONNECT " + hostport + " HTTP/1.1\r\nHost: " + hostport + "\r\n"
	if t.proxyAuth != "" {
		head += "Proxy-Authorization: " + t.proxyAuth + "\r\n"
	}
	if _, err := c.Write([]byte(head + "\r\n")); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("sending CONNECT: %w", err)
	}
	rest, err := readConnectAnswer(c)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	if len(rest) == 0 {
		return c, nil
	}
	return &prefixConn{Conn: c, pre: rest}, nil
}

// readConnectAnswer reads a CONNECT answer head in large reads (as a real
// client would) and returns the bytes read past it.
func readConnectAnswer(c net.Conn) ([]byte, error) {
	buf := make([]byte, 0, 512)
	tmp := make([]byte, 512)
	for {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head := string(buf[:i])
			if len(head) < 12 || head[9:12] != "200" {
				line, _, _ := bytes.Cut(buf, []byte("\r\n"))
				return nil, fmt.Errorf("CONNECT refused: %q", line)
			}
			return buf[i+4:], nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading CONNECT answer: %w", err)
		}
		if len(buf) > 16<<10 {
			return nil, fmt.Errorf("reading CONNECT answer: head too large")
		}
	}
}

// prefixConn returns bytes already read before reading the connection.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
