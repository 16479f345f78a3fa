package transparent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/isolate"
	"github.com/regate/regate/internal/isolate/fakedns"
	"github.com/regate/regate/internal/isolate/netstack"
	"github.com/regate/regate/proxy"
)

// Start serves the TUN link tun: DNS from a fake-IP pool, every TCP flow
// through p's pipeline, other UDP refused. stop ends it.
func Start(ctx context.Context, tun *os.File, p *proxy.Proxy, log *slog.Logger) (stop func(), err error) {
	v4, v6 := fakedns.DefaultPrefixes()
	pool, err := fakedns.NewPool(v4, v6, fakedns.DefaultMax)
	if err != nil {
		return nil, err
	}
	src := &source{ctx: ctx, p: p, pool: pool, fake: []netip.Prefix{v4, v6}, log: log}
	st, err := netstack.New(netstack.Config{
		FD:  int(tun.Fd()),
		MTU: isolate.TUNMTU,
		TCP: src.flow,
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
	return func() { remove(); st.Close(); _ = tun.Close() }, nil
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
}

// flow names a new flow's destination (the name behind a fake address,
// else the address itself) and hands it to the pipeline.
func (s *source) flow(f *netstack.Flow) {
	dst := f.Dst()
	host := dst.Addr().String()
	if name, ok := s.pool.Name(dst.Addr()); ok {
		host = name
	} else if s.fake[0].Contains(dst.Addr()) || s.fake[1].Contains(dst.Addr()) {
		f.Refuse() // a fake address this run never handed out
		return
	}
	dest, err := proxy.NewDest(host, int(dst.Port()))
	if err != nil {
		f.Refuse()
		return
	}
	who, err := s.p.Identify(proxy.Credentials{})
	if err != nil {
		f.Refuse()
		return
	}
	release := s.pool.Hold(dst.Addr())
	go func() {
		defer release()
		pc := &pending{f: f}
		s.p.Handle(s.ctx, proxy.Conn{Client: pc, Dest: dest, Who: who, Listener: Listener, Scheme: engine.SchemeTCP, Answer: pc})
	}()
}

// pending is a flow whose SYN is not answered yet: the pipeline tracks it
// (closing it refuses the flow, or closes the connection once accepted)
// and answers through it.
type pending struct {
	f    *netstack.Flow
	conn net.Conn // once accepted
}

func (p *pending) Refuse(proxy.Refusal) error { p.f.Refuse(); return nil }

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
