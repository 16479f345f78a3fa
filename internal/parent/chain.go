package parent

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// Chain picks the parent of each destination: one for tunnels (HTTP
// CONNECT, SOCKS5, transparent flows) and one for plain HTTP requests,
// except for the destinations of a NO_PROXY list, dialled directly. A nil
// *Chain is no parent at all.
type Chain struct {
	tunnel, plain *Parent
	// pick is httpproxy's NO_PROXY matching (names, "*.", ".", CIDRs,
	// ports; localhost and loopback addresses are always direct).
	pick func(*url.URL) (*url.URL, error)
}

// Env is the proxy configuration regate itself was started with:
// HTTPS_PROXY for tunnels, HTTP_PROXY for plain requests, ALL_PROXY for
// either when unset, NO_PROXY (each also lower case). Read it before the
// child's variables are set.
type Env struct {
	HTTPS, HTTP, All, No string
}

// FromEnvironment reads Env from getenv.
func FromEnvironment(getenv func(string) string) Env {
	get := func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return getenv(strings.ToLower(k))
	}
	return Env{HTTPS: get("HTTPS_PROXY"), HTTP: get("HTTP_PROXY"), All: get("ALL_PROXY"), No: get("NO_PROXY")}
}

// NewChain makes the chain of one parent URL for every path, with
// noUpstream (NO_PROXY entries) dialled directly.
func NewChain(raw string, noUpstream []string, o Options) (*Chain, error) {
	p, err := New(raw, o)
	if err != nil {
		return nil, err
	}
	return newChain(p, p, noUpstream), nil
}

// NewEnvChain makes the chain from regate's own environment; noUpstream is
// added to its NO_PROXY. With no proxy variable set it is nil.
func NewEnvChain(env Env, noUpstream []string, o Options) (*Chain, error) {
	tunnelURL, plainURL := or(env.HTTPS, env.All), or(env.HTTP, env.All)
	if tunnelURL == "" && plainURL == "" {
		return nil, nil
	}
	var tunnel, plain *Parent
	var err error
	if tunnelURL != "" {
		if tunnel, err = New(tunnelURL, o); err != nil {
			return nil, fmt.Errorf("HTTPS_PROXY: %w", err)
		}
	}
	if plainURL != "" {
		if plain, err = New(plainURL, o); err != nil {
			return nil, fmt.Errorf("HTTP_PROXY: %w", err)
		}
	}
	if env.No != "" {
		noUpstream = append(strings.Split(env.No, ","), noUpstream...)
	}
	return newChain(tunnel, plain, noUpstream), nil
}

func newChain(tunnel, plain *Parent, noUpstream []string) *Chain {
	cfg := httpproxy.Config{HTTPProxy: "parent", HTTPSProxy: "parent", NoProxy: strings.Join(noUpstream, ",")}
	return &Chain{tunnel: tunnel, plain: plain, pick: cfg.ProxyFunc()}
}

// For is the parent of host:port, nil when it is dialled directly; plain
// is true for a plain HTTP request.
func (c *Chain) For(host string, port int, plain bool) *Parent {
	if c == nil {
		return nil
	}
	p := c.tunnel
	scheme := "https"
	if plain {
		p, scheme = c.plain, "http"
	}
	if p == nil {
		return nil
	}
	u, err := c.pick(&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))})
	if err != nil || u == nil {
		return nil
	}
	return p
}

// String describes the chain without credentials.
func (c *Chain) String() string {
	switch {
	case c == nil:
		return "none"
	case c.tunnel == c.plain:
		return c.tunnel.String()
	}
	name := func(p *Parent) string {
		if p == nil {
			return "direct"
		}
		return p.String()
	}
	return "tunnels " + name(c.tunnel) + ", plain HTTP " + name(c.plain)
}

// Parents are the distinct parents of the chain, for checks.
func (c *Chain) Parents() []*Parent {
	if c == nil {
		return nil
	}
	var out []*Parent
	for _, p := range []*Parent{c.tunnel, c.plain} {
		if p != nil && (len(out) == 0 || out[0] != p) {
			out = append(out, p)
		}
	}
	return out
}
