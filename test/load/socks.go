package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"time"
)

// targetMicrosocks is the SOCKS5 workloads' baseline, microsocks.
const targetMicrosocks = "microsocks"

// socksConnect opens a SOCKS5 tunnel (no authentication) through the
// proxy at t.proxyAddr to the upstream's port: by name, or for a proxy
// that cannot be told the name's address (t.socksIP), to 127.0.0.1.
// Like a real client it waits for the method choice before it asks.
func (t target) socksConnect(port int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", t.proxyAddr, ioTimeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if err := socksHandshake(c, t.socksIP, port); err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func socksHandshake(c net.Conn, byIP bool, port int) error {
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		return fmt.Errorf("sending SOCKS5 greeting: %w", err)
	}
	var b [262]byte
	if _, err := io.ReadFull(c, b[:2]); err != nil {
		return fmt.Errorf("reading SOCKS5 method: %w", err)
	}
	if b[0] != 5 || b[1] != 0 {
		return fmt.Errorf("SOCKS5 method %#x refused", b[:2])
	}
	req := []byte{5, 1, 0, 1, 127, 0, 0, 1}
	if !byIP {
		req = append([]byte{5, 1, 0, 3, byte(len(upstreamName))}, upstreamName...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("sending SOCKS5 CONNECT: %w", err)
	}
	if _, err := io.ReadFull(c, b[:5]); err != nil {
		return fmt.Errorf("reading SOCKS5 reply: %w", err)
	}
	if b[1] != 0 {
		return fmt.Errorf("SOCKS5 CONNECT refused: reply %d", b[1])
	}
	rest := 0 // what follows the reply's first address byte
	switch b[3] {
	case 1:
		rest = 3 + 2
	case 4:
		rest = 15 + 2
	case 3:
		rest = int(b[4]) + 2
	default:
		return fmt.Errorf("SOCKS5 reply: address type %d", b[3])
	}
	if _, err := io.ReadFull(c, b[:rest]); err != nil {
		return fmt.Errorf("reading SOCKS5 reply: %w", err)
	}
	return nil
}

// addSocks makes the SOCKS5 workloads' targets: direct, regate's SOCKS5
// listeners and the CONNECT relay in the order of the proxy workloads,
// then microsocks (where it is missing rep says why).
func (e *env) addSocks(o options, rep *report, progress io.Writer) error {
	var ms []target
	if path, err := findMicrosocks(o.microsocks); err != nil {
		rep.MicrosocksSkipped = "microsocks rows skipped: " + err.Error()
		fmt.Fprintln(progress, rep.MicrosocksSkipped)
	} else {
		m, err := startMicrosocks(path)
		if err != nil {
			return err
		}
		rep.Microsocks = path
		e.stops = append(e.stops, func(*report) { m.stop() })
		ms = []target{{name: targetMicrosocks, proxyAddr: m.addr, socks: true, socksIP: true}}
	}
	for _, t := range e.targets {
		switch {
		case t.direct(), t.tunnelOnly:
			e.socks = append(e.socks, t)
		case t.socksAddr != "":
			e.socks = append(e.socks, target{name: t.name, proxyAddr: t.socksAddr, socks: true, served: t.served})
		}
	}
	e.socks = append(e.socks, ms...)
	return nil
}

// echoOnce is one new connection's work in the socks-newconn workload:
// open it, have one byte echoed, close.
func echoOnce(t target, u *upstream) error {
	c, err := t.openTunnel(u.echoPort)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	b := [1]byte{'x'}
	if _, err := c.Write(b[:]); err != nil {
		return fmt.Errorf("writing first byte: %w", err)
	}
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("reading echo: %w", err)
	}
	return nil
}

// newConnections: every client opens a connection, has one byte echoed
// and closes it, one after the other, until the deadline.
func newConnections(t target, u *upstream, clients int, d time.Duration) sample {
	return runClients(u, clients, d, func(deadline time.Time, c *counter) {
		for time.Now().Before(deadline) {
			if err := echoOnce(t, u); err != nil {
				c.fail(err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			c.ops.Add(1)
		}
	})
}

// errNoMicrosocks means no microsocks binary was found.
var errNoMicrosocks = errors.New("microsocks not installed")

// findMicrosocks returns the microsocks binary: "auto" looks on PATH,
// "off" skips.
func findMicrosocks(flag string) (string, error) {
	switch flag {
	case "off":
		return "", errors.New("microsocks disabled (-microsocks off)")
	case "auto":
		p, err := exec.LookPath("microsocks")
		if err != nil {
			return "", errNoMicrosocks
		}
		return p, nil
	}
	return flag, nil
}

// microsocks is a running microsocks on a loopback port.
type microsocks struct {
	cmd    *exec.Cmd
	addr   string
	waited chan struct{}
}

func startMicrosocks(path string) (*microsocks, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &microsocks{addr: "127.0.0.1:" + strconv.Itoa(port), waited: make(chan struct{})}
	m.cmd = exec.Command(path, "-i", "127.0.0.1", "-p", strconv.Itoa(port))
	// microsocks logs every connection to stderr and has no option to
	// stop it: the lines go to the null device, as a quiet server's would.
	m.cmd.Env = cleanEnv()
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting microsocks: %w", err)
	}
	go func() { _ = m.cmd.Wait(); close(m.waited) }()
	if err := waitAccepting(m.addr, m.waited, 10*time.Second); err != nil {
		m.stop()
		return nil, fmt.Errorf("microsocks: %w", err)
	}
	return m, nil
}

func (m *microsocks) stop() {
	_ = m.cmd.Process.Kill()
	<-m.waited
}

// runSocks is the SOCKS5 workloads, in interleaved rounds as the others:
// new connections per second (each: open, echo one byte, close) through
// regate's SOCKS5 listeners and microsocks, and bulk both ways through
// them and the CONNECT relay.
func runSocks(ctx context.Context, o options, e *env, rep *report, progress io.Writer) error {
	if o.workloads["socks-newconn"] {
		var targets []target
		for _, t := range e.socks {
			if !t.tunnelOnly {
				targets = append(targets, t)
			}
		}
		for _, t := range targets {
			newConnections(t, e.u, o.clients, o.warmup)
		}
		samples, err := interleave(ctx, targets, o.rounds, func(t target) sample { return newConnections(t, e.u, o.clients, o.duration) })
		if err != nil {
			return err
		}
		rep.addRate("socks-newconn", fmt.Sprintf("SOCKS5 new connection + echo, %d clients", o.clients), "conn/s", samples, perSecond, goalSocksNewConn, progress)
	}
	size := int64(o.bulkMiB) << 20
	for _, w := range []struct {
		id, title string
		run       func(target, *upstream, int64) sample
	}{
		{"socks-up", fmt.Sprintf("SOCKS5 upload %d MiB", o.bulkMiB), upload},
		{"socks-down", fmt.Sprintf("SOCKS5 download %d MiB", o.bulkMiB), download},
	} {
		if !o.workloads[w.id] {
			continue
		}
		samples, err := interleave(ctx, e.socks, o.rounds, func(t target) sample { return w.run(t, e.u, size) })
		if err != nil {
			return err
		}
		rep.addRate(w.id, w.title, "MB/s", samples, megabytesPerSecond, goalSocksBulk, progress)
	}
	return nil
}
