package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/elazarl/goproxy"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/parent"
)

// ServeHTTPProxy serves the HTTP proxy (plain requests and CONNECT) on ln
// until Shutdown; it returns nil after a graceful shutdown.
func (p *Proxy) ServeHTTPProxy(ln net.Listener) error {
	return p.serveHTTPProxy(ln, nil)
}

func (p *Proxy) serveHTTPProxy(ln net.Listener, b *binding) error {
	srv := &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP),
		ReadHeaderTimeout: p.cfg.HeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		ConnContext:       withClientConn,
		BaseContext:       func(net.Listener) context.Context { return p.baseCtx },
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	if !p.addListener(ln, srv) {
		_ = ln.Close()
		return ErrClosed
	}
	err := srv.Serve(&clientListener{Listener: ln, p: p, listener: ListenerHTTP, framing: true, bind: b})
	if b != nil && !p.isClosing() {
		// A bound listener ends when it is closed: its server and the
		// connections it accepted (keep-alive, hijacked) end with it.
		// (Shutdown drains them instead.)
		_ = srv.Close()
		p.endBound(ln, srv, b)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
	}
	if errors.Is(err, http.ErrServerClosed) || p.isClosing() {
		return nil
	}
	return fmt.Errorf("serving HTTP proxy: %w", err)
}

// serveHTTP is the listener's handler: framing check, then CONNECT or a
// plain request.
func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	defer p.recoverHTTP(w, r)
	head := headInfo{err: errLostTrack}
	if cc := clientConnOf(r.Context()); cc != nil && cc.frames != nil {
		head = cc.frames.next()
	}
	if head.err != nil {
		writeHTTPError(w, http.StatusBadRequest, head.err.Error(), true)
		return
	}
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r, head)
		return
	}
	p.servePlain(w, r, head)
}

func (p *Proxy) recoverHTTP(w http.ResponseWriter, r *http.Request) {
	rec := recover()
	if rec == nil {
		return
	}
	if rec == http.ErrAbortHandler {
		panic(rec)
	}
	p.log.Error("handler panicked; connection denied", "panic", rec, "method", r.Method, "target", r.RequestURI, "stack", string(debug.Stack()))
	writeHTTPError(w, http.StatusInternalServerError, "internal proxy error", true)
}

// servePlain is the plain-request source of the HTTP listener: it parses
// the absolute-form target and the credentials, then hands the request to
// the per-request path.
func (p *Proxy) servePlain(w http.ResponseWriter, r *http.Request, head headInfo) {
	dest, err := plainTarget(r, head)
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, err.Error(), true)
		return
	}
	who, err := p.identifyHTTP(r)
	if err != nil {
		writeAuthRequired(w, err)
		return
	}
	p.serveRequest(w, r, reqSource{dest: dest, who: who, listener: ListenerHTTP, scheme: engine.SchemeHTTP})
}

// reqSource is where a request on the per-request path comes from: the
// destination it must name, the client's identity and listener, and its
// scheme — http (proxied, or plain HTTP inside a tunnel) or https (inside
// an inspected tunnel, with tls).
type reqSource struct {
	dest     Dest
	who      Identity
	listener string
	scheme   string
	tls      *engine.TLS
}

// serveRequest is the per-request path of every plain HTTP request, and
// of every request inside an inspected tunnel: decide → plan → forward
// (goproxy, pooled upstream connections, dialed only to checked
// addresses) → one Outcome.
func (p *Proxy) serveRequest(w http.ResponseWriter, r *http.Request, src reqSource) {
	path, err := cleanPath(r.URL.EscapedPath())
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, err.Error(), true)
		return
	}
	// Upstream receives exactly the path the policy decides on.
	r.URL.Path, r.URL.RawPath = path, ""
	r.URL.Scheme, r.URL.Host = src.scheme, src.dest.String()
	f := p.newFlow(src.dest, src.scheme, r.Method, src.who, r.RemoteAddr, src.listener)
	f.in.Path = path
	f.in.TLS = src.tls
	f.in.Headers = policyHeaders(r)
	leaked := p.secretsInput(f, r)
	f.drive(func(f *flow) error {
		if !f.decide(r.Context()) || !p.swapSecrets(f, r, leaked) {
			answerHTTP(f.refusal(nil)).send(w)
			return nil
		}
		ctx, cancel := context.WithTimeout(r.Context(), p.cfg.DialTimeout)
		rt, err := p.route(ctx, f, src.scheme == engine.SchemeHTTP)
		cancel()
		if err != nil {
			answerHTTP(f.refusal(err)).send(w)
			return err
		}
		fw := &forwarding{f: f, route: rt, w: w}
		r = r.WithContext(context.WithValue(r.Context(), forwardKey{}, fw))
		if isUpgrade(r) {
			p.upgrade(w, r, fw)
			return fw.err
		}
		p.gp.ServeHTTP(w, r)
		return fw.err
	})
}

// transportFor is the upstream transport of a forwarded request: the
// shared one for plain HTTP, the attempt's own for inspected HTTPS.
func (p *Proxy) transportFor(r *http.Request, f *flow) *http.Transport {
	if r.URL.Scheme == "https" {
		return p.inspectTransport(f.in.AttemptID)
	}
	return p.transport
}

// isUpgrade reports whether r asks to switch protocols (a WebSocket
// handshake): goproxy strips its Connection and Upgrade headers, so it
// takes upgrade instead.
func isUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.Header.Get("Upgrade") != "" &&
		slices.ContainsFunc(r.Header.Values("Connection"), func(v string) bool {
			return slices.ContainsFunc(strings.Split(v, ","), func(t string) bool { return strings.EqualFold(strings.TrimSpace(t), "upgrade") })
		})
}

// upgrade forwards an allowed request that switches protocols, through
// net/http's reverse proxy over the same transports and route: the 101
// answer is relayed, then the two connections are joined, as a tunnel's.
// The protocol after the switch is not decided again (the request was).
func (p *Proxy) upgrade(w http.ResponseWriter, r *http.Request, fw *forwarding) {
	t := p.transportFor(r, fw.f)
	stripUpgradeHops(r.Header)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.Host = r.Host },
		Transport: t,
		ErrorLog:  slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			fw.err = err
			answerHTTP(fw.f.refusal(err)).write(w)
		},
		ModifyResponse: func(resp *http.Response) error {
			if fw.route.absolute && parent.IsRefusal(resp) {
				return &dialError{class: dialParent, err: &parent.Error{Status: resp.Status}}
			}
			return nil
		},
	}
	rp.ServeHTTP(w, r)
}

// stripUpgradeHops removes the hop-by-hop headers of an upgrade request
// but Connection and Upgrade themselves (net/http's reverse proxy keeps
// those for the switch).
func stripUpgradeHops(h http.Header) {
	for _, k := range []string{"Proxy-Connection", "Keep-Alive", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding"} {
		h.Del(k)
	}
}

// policyHeaders is input.headers of r: lower-case names, repeated values
// joined; Host is input.host; Proxy-Authorization is left out.
func policyHeaders(r *http.Request) map[string]string {
	h := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		if k == "Proxy-Authorization" { // regate's own credentials: input.attempt says who
			continue
		}
		h[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	return h
}

// identifyHTTP identifies the client of a request by its
// Proxy-Authorization; a refusal is recorded.
func (p *Proxy) identifyHTTP(r *http.Request) (Identity, error) {
	creds, err := parseProxyAuthorization(r.Header.Get("Proxy-Authorization"))
	who := Identity{}
	cc := clientConnOf(r.Context())
	switch {
	case err != nil:
	case cc == nil:
		err = fmt.Errorf("%w: %w", errAuth, errLostTrack)
	default:
		who, err = p.identify(creds, cc.bound)
	}
	if err != nil {
		p.authRefused(ListenerHTTP, r.RemoteAddr, err)
	}
	return who, err
}

// plainTarget is the destination of an absolute-form request; the Host
// header, when sent, must name the same destination.
func plainTarget(r *http.Request, head headInfo) (Dest, error) {
	switch {
	case !r.URL.IsAbs() || r.URL.Host == "":
		return Dest{}, errors.New("not a proxy request: the request target must be an absolute http:// URL")
	case r.URL.Scheme != "http":
		return Dest{}, fmt.Errorf("scheme %q cannot be proxied as a plain request (use CONNECT)", r.URL.Scheme)
	case r.URL.User != nil:
		return Dest{}, errors.New("the request URL must not contain user information")
	case len(head.hosts) > 1:
		return Dest{}, errors.New("more than one Host header")
	}
	t, err := parseDest(r.URL.Host, 80)
	if err != nil {
		return Dest{}, err
	}
	for _, h := range head.hosts {
		ht, err := parseDest(h, 80)
		if err != nil || ht.Host != t.Host || ht.Port != t.Port {
			return Dest{}, fmt.Errorf("host header %q does not match the request URL", h)
		}
	}
	return t, nil
}

// forwarding carries a plain request's flow and route to the transport
// (its proxy choice and dialer), and the forwarding error back.
type forwarding struct {
	f     *flow
	route route
	w     http.ResponseWriter // the client's, flushed while a streamed body is relayed
	err   error
}

type forwardKey struct{}

func (p *Proxy) newGoproxy() *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = slogPrinter{p.log}
	gp.Tr = p.transport
	gp.ConnectDial = nil
	gp.KeepAcceptEncoding = true
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeHTTPError(w, http.StatusBadRequest, "not a proxy request", true)
	})
	gp.OnRequest().DoFunc(func(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		stripHopHeaders(r.Header)
		// The client's Connection: close is hop-by-hop: it ends the client
		// connection, not the pooled upstream one (as httputil.ReverseProxy).
		r.Close = false
		ctx.RoundTripper = goproxy.RoundTripperFunc(p.roundTrip)
		return r, nil
	})
	gp.OnResponse().DoFunc(func(resp *http.Response, _ *goproxy.ProxyCtx) *http.Response {
		if resp != nil {
			stripHopHeaders(resp.Header)
		}
		return resp
	})
	return gp
}

func (p *Proxy) newTransport() *http.Transport {
	return &http.Transport{
		Proxy:               parentOf,
		DialContext:         p.dialPlanned,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     p.cfg.IdleTimeout,
		DisableCompression:  true,
	}
}

// parentOf is the transport's proxy choice: the parent's URL when the
// request goes to an HTTP parent in absolute form (pooled connections to
// it are shared by every destination), nil otherwise.
func parentOf(r *http.Request) (*url.URL, error) {
	if fw, ok := r.Context().Value(forwardKey{}).(*forwarding); ok && fw.route.absolute {
		return fw.route.parent.PlainURL(), nil
	}
	return nil, nil
}

// dialPlanned dials the route planned for this request: the addresses the
// guard checked, the HTTP parent itself, or a tunnel through a SOCKS5
// parent; a dial without a route is refused (fail closed). Pooled
// connections are reused only within a host:port, whose addresses the
// guard checked, or within the parent's.
func (p *Proxy) dialPlanned(ctx context.Context, _, _ string) (net.Conn, error) {
	fw, ok := ctx.Value(forwardKey{}).(*forwarding)
	if !ok {
		return nil, errors.New("dialing upstream: no checked destination")
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	if par := fw.route.parent; fw.route.absolute {
		c, err := par.DialProxy(ctx)
		if err != nil {
			p.m.dialErrors.WithLabelValues(dialParent).Inc()
			return nil, &dialError{class: dialParent, err: err}
		}
		fw.f.setUpstream(par.String())
		return c, nil
	}
	return p.dialRoute(ctx, fw.f, fw.route)
}

// roundTrip forwards an allowed request; failures become 502/504 answers.
func (p *Proxy) roundTrip(r *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	fw, ok := r.Context().Value(forwardKey{}).(*forwarding)
	if !ok {
		return nil, errors.New("forwarding request: no checked destination")
	}
	f := fw.f
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingBody{ReadCloser: r.Body, n: &f.up}
	}
	resp, err := p.forward(r, fw)
	if err != nil {
		err = p.scrubError(err)
		fw.err = err
		return answerHTTP(f.refusal(err)).response(r), nil
	}
	if fw.route.absolute && parent.IsRefusal(resp) {
		_ = resp.Body.Close()
		p.m.dialErrors.WithLabelValues(dialParent).Inc()
		fw.err = &dialError{class: dialParent, err: &parent.Error{Status: resp.Status}}
		return answerHTTP(f.refusal(fw.err)).response(r), nil
	}
	if set := p.scrubberOf(f); set != nil {
		if err := readableForScrub(resp, len(f.in.Secrets) > 0); err != nil {
			_ = resp.Body.Close()
			fw.err = err
			return answerHTTP(f.refusal(err)).response(r), nil
		}
		set.Scrub(resp.Header)
		set.Scrub(resp.Trailer)
		resp.Body = set.ScrubBody(resp.Body)
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &f.down}
	if fl, ok := fw.w.(http.Flusher); ok && resp.ContentLength < 0 {
		// A streamed body (chunked, HTTP/2 without a length: server-sent
		// events, progress) reaches the client as it comes.
		resp.Body = &flushingBody{ReadCloser: resp.Body, flush: fl.Flush}
	}
	return resp, nil
}

// forward sends r upstream: through the h1Client when it takes r, else
// through the request's transport.
func (p *Proxy) forward(r *http.Request, fw *forwarding) (*http.Response, error) {
	f := fw.f
	if p.h1.takes(r, fw.route) {
		dial := func(ctx context.Context) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
			defer cancel()
			return p.dialRoute(ctx, f, fw.route)
		}
		return p.h1.roundTrip(r, dial, func(c net.Conn) { f.setUpstream(c.RemoteAddr().String()) })
	}
	par := fw.route.parent
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if par == nil {
			f.setUpstream(i.Conn.RemoteAddr().String())
		}
	}}
	return p.transportFor(r, f).RoundTrip(r.WithContext(httptrace.WithClientTrace(r.Context(), trace)))
}

// flushingBody flushes the client's writer before each read, so that what
// goproxy wrote of the body so far is sent before waiting for more.
type flushingBody struct {
	io.ReadCloser
	flush func()
}

func (b *flushingBody) Read(p []byte) (int, error) {
	b.flush()
	return b.ReadCloser.Read(p)
}

// countingBody counts what passes.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// hopHeaders are never forwarded (RFC 9110 §7.6.1), nor are the headers a
// Connection header names.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func stripHopHeaders(h http.Header) {
	for _, key := range []string{"Connection", "Proxy-Connection"} {
		for _, v := range h.Values(key) {
			for name := range strings.SplitSeq(v, ",") {
				if name = strings.TrimSpace(name); name != "" {
					h.Del(name)
				}
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// slogPrinter lets goproxy log through slog, at debug level.
type slogPrinter struct{ log *slog.Logger }

func (s slogPrinter) Printf(format string, v ...any) {
	s.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "goproxy")
}
