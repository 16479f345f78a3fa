// Package proxy is regate's enforcement point: an HTTP proxy (plain requests
// and CONNECT, on elazarl/goproxy) and a SOCKS5 server that authenticate the
// attempt, ask a Decider about every connection, resolve and check the
// destination against the SSRF guard, and relay the allowed ones.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
)

// ErrClosed is returned by the Serve methods after Shutdown has begun.
var ErrClosed = errors.New("proxy is shut down")

// Proxy serves the HTTP and SOCKS5 listeners. Create it with New.
type Proxy struct {
	cfg       Config
	decider   Decider
	log       *slog.Logger
	guard     *guard
	m         *metrics
	gp        *goproxy.ProxyHttpServer
	transport *http.Transport
	h1        *h1Client // bodiless plain requests on direct routes
	now       func() time.Time

	slots   *slots
	authLog sometimes

	handshakes handshakeLog      // failed client handshakes on inspected hosts
	inspectTs  inspectTransports // upstream transports of inspected requests

	baseCtx context.Context // canceled when Shutdown gives up draining
	cancel  context.CancelFunc

	mu      sync.Mutex
	closing bool
	servers map[*http.Server]struct{}
	sources map[io.Closer]struct{} // listeners and other sources, closed by Shutdown
	conns   map[net.Conn]int       // tracked connections, by times tracked
	connWG  sync.WaitGroup
}

// New validates cfg and builds a Proxy deciding with d. It opens nothing;
// it registers the metrics with cfg.Registerer.
func New(cfg Config, d Decider) (*Proxy, error) {
	if d == nil {
		return nil, errors.New("creating proxy: nil decider")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("creating proxy: %w", err)
	}
	var resolver Resolver = net.DefaultResolver
	if cfg.Resolver != nil {
		resolver = cfg.Resolver
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext
	}
	p := &Proxy{
		cfg:     cfg,
		decider: d,
		log:     cfg.Logger.With("component", "proxy"),
		guard: &guard{
			resolver:    resolver,
			hosts:       cfg.Hosts,
			allow:       cfg.AllowCIDRs,
			dialTimeout: cfg.DialTimeout,
			dialer:      cfg.Dial,
		},
		m:       newMetrics(),
		slots:   newSlots(cfg.MaxTunnels, cfg.MaxTunnelsPerClient),
		authLog: sometimes{interval: authLogInterval},
		now:     time.Now,
		servers: make(map[*http.Server]struct{}),
		sources: make(map[io.Closer]struct{}),
		conns:   make(map[net.Conn]int),
	}
	if err := p.m.register(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("creating proxy: %w", err)
	}
	p.baseCtx, p.cancel = context.WithCancel(context.Background())
	p.transport = p.newTransport()
	p.h1 = newH1Client(p.transport.MaxIdleConnsPerHost, p.cfg.IdleTimeout)
	p.gp = p.newGoproxy()
	return p, nil
}

// ActiveTunnels returns the number of open tunnels.
func (p *Proxy) ActiveTunnels() int { return int(p.slots.open.Load()) }

// addListener registers ln (and srv, for the HTTP listener) for Shutdown
// and for the loop guard; false once Shutdown has begun.
func (p *Proxy) addListener(ln net.Listener, srv *http.Server) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.sources[ln] = struct{}{}
	if srv != nil {
		p.servers[srv] = struct{}{}
	}
	p.guard.addOwn(ln.Addr())
	return true
}

// addServer registers the HTTP server of a tunnel served as plain HTTP,
// so that Shutdown ends it as it ends the listener's; false once Shutdown
// has begun.
func (p *Proxy) addServer(srv *http.Server) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.servers[srv] = struct{}{}
	return true
}

func (p *Proxy) removeServer(srv *http.Server) {
	p.mu.Lock()
	delete(p.servers, srv)
	p.mu.Unlock()
}

// AddSource registers a source that is not a net.Listener (one that feeds
// Handle itself): Shutdown closes it first, so that it stops handing new
// connections over, then drains what it handed. remove unregisters it; it
// fails with ErrClosed once Shutdown has begun.
func (p *Proxy) AddSource(src io.Closer) (remove func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, ErrClosed
	}
	p.sources[src] = struct{}{}
	return func() {
		p.mu.Lock()
		delete(p.sources, src)
		p.mu.Unlock()
	}, nil
}

func (p *Proxy) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

// track registers a connection Shutdown must drain; release must be called
// when it is done. A source may track a connection for its handshake and
// the pipeline again for its tunnel: it stays tracked until both released.
// It fails once Shutdown has begun.
func (p *Proxy) track(c net.Conn) (release func(), ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, false
	}
	p.conns[c]++
	p.connWG.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			if p.conns[c]--; p.conns[c] <= 0 {
				delete(p.conns, c)
			}
			p.mu.Unlock()
			p.connWG.Done()
		})
	}, true
}

// Shutdown stops accepting, lets plain requests and tunnels finish until
// ctx is done, then closes what remains and returns ctx's error.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	var servers []*http.Server
	for srv := range p.servers {
		servers = append(servers, srv)
	}
	for src := range p.sources {
		_ = src.Close()
	}
	p.mu.Unlock()

	var errs []error
	for _, srv := range servers {
		// Shutdown's own close of a listener closed above is no failure.
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
			_ = srv.Close()
			errs = append(errs, fmt.Errorf("shutting down HTTP listener: %w", err))
		}
	}
	drained := make(chan struct{})
	go func() { p.connWG.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		p.cancel()
		p.closeConns()
		<-drained
		errs = append(errs, fmt.Errorf("draining tunnels: %w", ctx.Err()))
	}
	p.cancel()
	p.transport.CloseIdleConnections()
	p.h1.closeIdle()
	p.closeInspectTransports()
	return errors.Join(errs...)
}

func (p *Proxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}
