package transparent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/isolate"
	"github.com/regate/regate/internal/isolate/fakedns"
	"github.com/regate/regate/internal/isolate/netstack"
	"github.com/regate/regate/proxy"
)

// Start serves the link: DNS from a fake-IP pool, every TCP flow through
// p's pipeline, other UDP refused and logged. stop ends it.
func Start(ctx context.Context, link *isolate.Link, p *proxy.Proxy, log *slog.Logger, o Options) (stop func(), err error) {
	v4, v6 := fakedns.DefaultPrefixes()
	if o.DNSPool == 0 {
		o.DNSPool = fakedns.DefaultMax
	}
	pool, err := fakedns.NewPool(v4, v6, o.DNSPool)
	if err != nil {
		return nil, err
	}
	if o.HTTPPorts == nil {
		o.HTTPPorts = DefaultHTTPPorts
	}
	src := &source{ctx: ctx, p: p, pool: pool, fake: []netip.Prefix{v4, v6}, log: log, o: o,
		drops: newUDPDrops(), m: newMetrics(o.Registerer)}
	var eth *netstack.Ethernet
	if e := link.Ethernet; e != nil {
		eth = &netstack.Ethernet{Own: e.Own, Peer: e.Peer, PeerAddrs: e.PeerAddrs}
	}
	st, err := netstack.New(netstack.Config{
		FD:       int(link.File.Fd()),
		MTU:      link.MTU,
		Ethernet: eth,
		TCP:      src.flow,
		UDP:      src.udp,
		DNS: func(q []byte) []byte {
			out, err := fakedns.Answer(q, pool)
			if err != nil {
				return nil
			}
			return out
		},
	})
	if err != nil {
		return nil, err
	}
	remove, err := p.AddSource(&closer{st.Close})
	if err != nil {
		st.Close()
		return nil, err
	}
	return func() { remove(); st.Close(); _ = link.File.Close() }, nil
}

// closer lets Shutdown stop the stack.
type closer struct{ close func() }

func (c *closer) Close() error { c.close(); return nil }

type source struct {
	ctx  context.Context
	p    *proxy.Proxy
	pool *fakedns.Pool
	fake []netip.Prefix
	log  *slog.Logger
	o    Options

	drops *udpDrops
	m     metrics
}

// name is what the command named by connecting to dst: the name behind a
// fake address (and that address), else the address itself. ok is false
// for a fake address this run never handed out.
func (s *source) name(dst netip.Addr) (host string, fake netip.Addr, ok bool) {
	if name, found := s.pool.Name(dst); found {
		return name, dst, true
	}
	if s.fake[0].Contains(dst) || s.fake[1].Contains(dst) {
		return "", netip.Addr{}, false
	}
	return dst.String(), netip.Addr{}, true
}

// udp records a dropped datagram (the stack answers it with ICMP port
// unreachable): counted always, a deny event per destination and window.
func (s *source) udp(src, dst netip.AddrPort) {
	s.m.udpDropped.Inc()
	host, fake, ok := s.name(dst.Addr())
	if !ok {
		host = dst.Addr().String()
	}
	if s.o.OnUDP != nil {
		s.o.OnUDP(host, int(dst.Port()))
	}
	if !s.drops.event(dst, time.Now()) {
		return
	}
	dest, err := proxy.NewDest(host, int(dst.Port()))
	if err != nil {
		return
	}
	dest.Fake = fake
	who, err := s.p.Identify(proxy.Credentials{})
	if err != nil {
		return
	}
	s.p.Drop(proxy.Dropped{
		Dest: dest, Scheme: engine.SchemeUDP, Who: who,
		Client: src.String(), Listener: Listener,
		Rule: RuleUDP, Reason: "UDP is not allowed in the sandbox (only DNS, answered by regate)",
	})
}

// flow names a new flow's destination (the name behind a fake address,
// else the address itself) and hands it to the pipeline, on the flow's
// own goroutine (the stack's), until the flow ends.
func (s *source) flow(f *netstack.Flow) {
	dst := f.Dst()
	host, fake, ok := s.name(dst.Addr())
	if !ok {
		f.Refuse() // a fake address this run never handed out
		return
	}
	dest, err := proxy.NewDest(host, int(dst.Port()))
	if err != nil {
		f.Refuse()
		return
	}
	dest.Fake = fake
	who, err := s.p.Identify(proxy.Credentials{})
	if err != nil {
		f.Refuse()
		return
	}
	defer s.pool.Hold(dst.Addr())()
	pc := &pending{f: f, p: s.p, http: slices.Contains(s.o.HTTPPorts, int(dst.Port()))}
	s.p.Handle(s.ctx, proxy.Conn{Client: pc, Dest: dest, Who: who, Listener: Listener, Scheme: engine.SchemeTCP, Answer: pc})
}

// pending is a flow whose SYN is not answered yet: the pipeline tracks it
// (closing it refuses the flow, or closes the connection once accepted)
// and answers through it.
type pending struct {
	f    *netstack.Flow
	p    *proxy.Proxy
	http bool     // a port where a denied HTTP request gets the 403
	conn net.Conn // once accepted
}

// httpWait bounds how long a denied flow to an HTTP port waits for the
// request it answers.
const httpWait = 5 * time.Second

// Refuse resets the flow, except a deny on an HTTP port: the handshake
// completes so that an HTTP request gets the proxy's 403 (a program
// shows why); anything else sent there is closed unanswered.
func (p *pending) Refuse(r proxy.Refusal) error {
	if !p.http || r.Class != proxy.ClassDenied {
		p.f.Refuse()
		return nil
	}
	c, err := p.f.Accept()
	if err != nil {
		return err
	}
	p.conn = c
	defer c.Close()
	if !p.p.AnswerPlainHTTP(c, r, httpWait) {
		return errors.New("a denied flow to an HTTP port sent no HTTP request")
	}
	return nil
}

func (p *pending) Established(net.Conn) (net.Conn, []byte, error) {
	c, err := p.f.Accept()
	if err != nil {
		return nil, nil, err
	}
	p.conn = c
	return c, nil, nil
}

var errPending = errors.New("transparent flow not accepted")

func (p *pending) Read([]byte) (int, error)  { return 0, errPending }
func (p *pending) Write([]byte) (int, error) { return 0, errPending }
func (p *pending) Close() error {
	if p.conn != nil {
		return p.conn.Close()
	}
	p.f.Refuse()
	return nil
}
func (p *pending) LocalAddr() net.Addr              { return net.TCPAddrFromAddrPort(p.f.Dst()) }
func (p *pending) RemoteAddr() net.Addr             { return net.TCPAddrFromAddrPort(p.f.Src()) }
func (p *pending) SetDeadline(time.Time) error      { return nil }
func (p *pending) SetReadDeadline(time.Time) error  { return nil }
func (p *pending) SetWriteDeadline(time.Time) error { return nil }
func (p *pending) String() string                   { return fmt.Sprintf("transparent flow %s", p.f.Dst()) }
