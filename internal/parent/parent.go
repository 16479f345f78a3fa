// Package parent is the parent proxy regate chains to behind a corporate
// egress proxy: HTTP CONNECT over TCP (http://) or TLS (https://), or
// SOCKS5 (socks5://, socks5h://), with credentials that never leave this
// package in an error, a log line or a status document. regate decides
// first; a Parent only carries what was allowed.
package parent

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/proxy"

	"github.com/regate/regate/internal/private"
)

// Parent is one parent proxy.
type Parent struct {
	scheme string // "http", "https" or "socks5"
	addr   string // host:port
	user   *url.Userinfo
	tls    *tls.Config // https only
	dialer *net.Dialer
}

// Options are what a Parent is made with besides its URL.
type Options struct {
	// CAFile is a PEM file of roots for an https:// parent's certificate,
	// used instead of the system's; "" is the system's.
	CAFile string
	// AuthFile holds "user:password" (one line), which replaces the URL's
	// user information; it must be the user's own and private, as the
	// admin token file.
	AuthFile string
	// DialTimeout bounds reaching the parent and its answer.
	DialTimeout time.Duration
}

// New parses raw (http://, https://, socks5:// or socks5h://, with an
// optional user:password@ and port) into a Parent. Errors never quote the
// credentials.
func New(raw string, o Options) (*Parent, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("upstream proxy %q: not a URL of the form scheme://host:port", Redact(raw))
	}
	p := &Parent{user: u.User, dialer: &net.Dialer{Timeout: o.DialTimeout}}
	port := u.Port()
	switch u.Scheme {
	case "http":
		p.scheme, port = "http", or(port, "80")
	case "https":
		p.scheme, port = "https", or(port, "443")
	case "socks5", "socks5h":
		p.scheme, port = "socks5", or(port, "1080")
	default:
		return nil, fmt.Errorf("upstream proxy %s: scheme %q is not http, https, socks5 or socks5h", Redact(raw), u.Scheme)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream proxy %s: a path, query or fragment is not allowed", Redact(raw))
	}
	p.addr = net.JoinHostPort(u.Hostname(), port)
	if o.AuthFile != "" {
		if p.user, err = readAuth(o.AuthFile); err != nil {
			return nil, err
		}
	}
	if p.scheme == "https" {
		p.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("upstream proxy CA: %w", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("upstream proxy CA %s: no PEM certificate in it", o.CAFile)
			}
			p.tls.RootCAs = roots
		}
	} else if o.CAFile != "" {
		return nil, fmt.Errorf("upstream proxy %s: a CA file is for an https:// parent", p)
	}
	return p, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// readAuth reads "user:password" from a private file of the user's own.
func readAuth(path string) (*url.Userinfo, error) {
	b, err := private.ReadFile(path, private.Secret, 4096)
	if err != nil {
		return nil, fmt.Errorf("upstream proxy credentials: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line == "" {
		return nil, fmt.Errorf("upstream proxy credentials %s: empty", path)
	}
	user, pass, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
	if !ok || user == "" {
		return nil, fmt.Errorf("upstream proxy credentials %s: want one line user:password", path)
	}
	return url.UserPassword(user, pass), nil
}

// String is the parent without credentials: scheme://host:port, with
// "user:***@" when it has some.
func (p *Parent) String() string {
	if p.user != nil {
		return p.scheme + "://" + p.user.Username() + ":***@" + p.addr
	}
	return p.scheme + "://" + p.addr
}

// Redact is raw with any password replaced, for messages about a URL that
// may not parse.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		if i := strings.Index(raw, "://"); i >= 0 && i < at {
			return raw[:i+3] + "***" + raw[at:]
		}
		return "***" + raw[at:]
	}
	return raw
}

// Error is a parent's failure: Status is its answer when it refused
// (`403 Forbidden`, `407 Proxy Authentication Required`, a SOCKS5 reply),
// else Err says why it could not be reached.
type Error struct {
	Status string
	Err    error
}

func (e *Error) Error() string {
	if e.Status != "" {
		return "upstream proxy refused: " + e.Status
	}
	return "upstream proxy unreachable: " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Tunnel connects to target (host:port) through the parent: a CONNECT, or
// a SOCKS5 CONNECT with the name (the parent resolves it) or the address
// as given.
func (p *Parent) Tunnel(ctx context.Context, target string) (net.Conn, error) {
	if p.scheme == "socks5" {
		return p.socks(ctx, target)
	}
	c, err := p.DialProxy(ctx)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	conn, err := p.connect(c, target)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return conn, nil
}

// connect sends CONNECT target on c and reads the parent's answer.
func (p *Parent) connect(c net.Conn, target string) (net.Conn, error) {
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: http.Header{},
	}
	if auth := p.authorization(); auth != "" {
		req.Header.Set("Proxy-Authorization", auth)
	}
	if err := req.Write(c); err != nil {
		return nil, &Error{Err: fmt.Errorf("sending CONNECT to %s: %w", p.addr, err)}
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, &Error{Err: fmt.Errorf("reading the answer of %s: %w", p.addr, err)}
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, &Error{Status: printable(resp.Status)}
	}
	if br.Buffered() > 0 { // bytes of the destination already read
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// authorization is the Proxy-Authorization value, "" without credentials.
func (p *Parent) authorization() string {
	if p.user == nil {
		return ""
	}
	pass, _ := p.user.Password()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user.Username()+":"+pass))
}

// DialProxy connects to the parent itself (TLS for https://).
func (p *Parent) DialProxy(ctx context.Context) (net.Conn, error) {
	c, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, &Error{Err: err}
	}
	if p.tls == nil {
		return c, nil
	}
	tc := tls.Client(c, p.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, &Error{Err: fmt.Errorf("TLS with %s: %w", p.addr, err)}
	}
	return tc, nil
}

// PlainURL is the URL plain HTTP requests are sent to in absolute form
// (with credentials, for net/http's Proxy-Authorization; never to be
// printed); nil for a SOCKS5 parent, through which plain requests are
// tunnelled. Its scheme is http even for an https:// parent: DialProxy
// makes the TLS connection.
func (p *Parent) PlainURL() *url.URL {
	if p.scheme == "socks5" {
		return nil
	}
	return &url.URL{Scheme: "http", Host: p.addr, User: p.user}
}

// IsRefusal reports whether resp, the answer to a plain request sent
// through the parent, is the parent's own refusal rather than the
// destination's answer: a 407 (never passed to the client: it would ask
// for credentials regate holds), or an error the parent marks as its own
// (RFC 9209 Proxy-Status with an error, or Squid's X-Squid-Error).
func IsRefusal(resp *http.Response) bool {
	if resp.StatusCode == http.StatusProxyAuthRequired {
		return true
	}
	if resp.StatusCode < 400 {
		return false
	}
	if resp.Header.Get("X-Squid-Error") != "" {
		return true
	}
	for _, v := range resp.Header.Values("Proxy-Status") {
		if strings.Contains(v, "error=") {
			return true
		}
	}
	return false
}

// Check reports whether the parent answers: it connects (and shakes hands
// for https://) without sending a request.
func (p *Parent) Check(ctx context.Context) error {
	c, err := p.DialProxy(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}

// socks tunnels through a SOCKS5 parent (golang.org/x/net/proxy). A
// failure after the parent was reached is its refusal.
func (p *Parent) socks(ctx context.Context, target string) (net.Conn, error) {
	var auth *proxy.Auth
	if p.user != nil {
		pass, _ := p.user.Password()
		auth = &proxy.Auth{User: p.user.Username(), Password: pass}
	}
	fwd := &reached{d: p.dialer}
	d, err := proxy.SOCKS5("tcp", p.addr, auth, fwd)
	if err != nil {
		return nil, &Error{Err: err}
	}
	c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", target)
	if err == nil {
		return c, nil
	}
	if fwd.ok {
		return nil, &Error{Status: "SOCKS5 " + socksReason(err)}
	}
	return nil, &Error{Err: err}
}

// reached dials the SOCKS5 parent and remembers whether it answered.
type reached struct {
	d  *net.Dialer
	ok bool
}

func (r *reached) Dial(network, addr string) (net.Conn, error) {
	return r.DialContext(context.Background(), network, addr)
}

func (r *reached) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := r.d.DialContext(ctx, network, addr)
	r.ok = err == nil
	return c, err
}

// socksReason is the part of x/net's SOCKS error after its operation.
func socksReason(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return printable(strings.TrimPrefix(err.Error(), "unknown error "))
}

// printable bounds a parent's text to printable ASCII.
func printable(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < 120; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			out = append(out, c)
		}
	}
	return string(out)
}

// bufferedConn reads what the parent's answer left buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
