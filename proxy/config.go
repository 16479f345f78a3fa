package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/parent"
	"github.com/regate/regate/internal/secrets"
)

// Decider decides one connection. An error or a zero Decision denies.
type Decider interface {
	Decide(context.Context, engine.Input) (engine.Decision, error)
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(context.Context, engine.Input) (engine.Decision, error)

// Decide calls f.
func (f DeciderFunc) Decide(ctx context.Context, in engine.Input) (engine.Decision, error) {
	return f(ctx, in)
}

// DecisionLogger records a decision the proxy takes on its own (an SSRF
// guard deny) as a decision-log event and returns its decision id.
type DecisionLogger interface {
	LogDecision(engine.Input, engine.Decision) string
}

// Resolver looks names up; net.DefaultResolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DialFunc connects to an upstream address ("tcp", "ip:port").
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Defaults applied by New to zero Config fields.
const (
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultMaxHeaderBytes = 64 << 10
	DefaultDialTimeout    = 10 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultMaxTunnels     = 4096
	DefaultTLSPeekTimeout = 5 * time.Second
)

// Config configures a Proxy. The zero value is usable: defaults apply, no
// attempt may authenticate and anonymous clients are refused.
type Config struct {
	// Logger receives diagnostics (never per-connection info); nil discards.
	Logger *slog.Logger
	// Attempts authenticates proxy credentials; nil means an empty registry.
	Attempts *attempt.Registry
	// BoundAttempt attributes every client to this attempt (regate run):
	// clients without credentials are accepted as it, credentials that are
	// sent must be this attempt's.
	BoundAttempt string
	// AllowAnonymous accepts clients without credentials (attempt_id "")
	// when no attempt is bound.
	AllowAnonymous bool

	// AllowCIDRs exempts destinations from the SSRF guard.
	AllowCIDRs []netip.Prefix
	// Hosts pins names to addresses (instead of DNS); the guard still
	// checks them.
	Hosts map[string][]netip.Addr
	// Resolver looks names up; nil means net.DefaultResolver.
	Resolver Resolver
	// Dial connects upstream. It is called only with addresses the SSRF
	// guard checked; nil is a net.Dialer bounded by DialTimeout.
	Dial DialFunc
	// Inspect enables HTTPS inspection of the tunnels whose decision asks
	// for it; nil refuses them (fail closed).
	Inspect *Inspection
	// Secrets are the credentials kept outside the sandbox: for a flow
	// whose attempt holds placeholders (the run's command, or an attempt
	// granted secrets), the tunnels of the hosts they are bound to are
	// always inspected, and an allowed request to such a host gets the
	// real value in place of the placeholder; a real value is refused on
	// any other host, whoever sends it. nil: none.
	Secrets *secrets.Broker
	// Parents chains allowed connections to a parent proxy (nil: every
	// destination is dialled directly). The decision comes first; then a
	// tunnel is a CONNECT (or SOCKS5 CONNECT) to the parent and a plain
	// request an absolute-form request to it, over pooled connections.
	Parents *parent.Chain
	// ParentByAddress asks the parent for the address the guard checked
	// (keeping regate's pin) instead of the name the client asked for
	// (the parent resolves it; regate checks what it can).
	ParentByAddress bool

	// DecisionLogger logs the proxy's own denies; nil does not log.
	DecisionLogger DecisionLogger
	// OnOutcome receives one record per finished connection (per request
	// for plain HTTP).
	OnOutcome func(Outcome)
	// Registerer receives the proxy's metrics; nil does not register.
	Registerer prometheus.Registerer

	HeaderTimeout  time.Duration // reading a request head / SOCKS5 handshake
	MaxHeaderBytes int           // request head size; 431 beyond
	DialTimeout    time.Duration // resolving and dialing upstream
	IdleTimeout    time.Duration // tunnel and keep-alive idle time
	MaxTunnels     int           // concurrent tunnels; 503 / SOCKS5 0x01 beyond
	// MaxTunnelsPerClient is each client's share of MaxTunnels (a client
	// is its attempt, or its address when anonymous); 0: a quarter of
	// MaxTunnels, or all of them when an attempt is bound (regate run).
	MaxTunnelsPerClient int
	TLSPeekTimeout      time.Duration // reading a tunnel's ClientHello once begun
}

// validate fills defaults and reports every problem at once.
func (c *Config) validate() error {
	var errs []error
	for name, d := range map[string]*time.Duration{
		"header timeout": &c.HeaderTimeout, "dial timeout": &c.DialTimeout,
		"idle timeout": &c.IdleTimeout, "TLS peek timeout": &c.TLSPeekTimeout,
	} {
		if *d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", name, *d))
		}
	}
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("max header bytes %d is negative", c.MaxHeaderBytes))
	}
	if c.MaxTunnels < 0 {
		errs = append(errs, fmt.Errorf("max tunnels %d is negative", c.MaxTunnels))
	}
	if c.MaxTunnelsPerClient < 0 {
		errs = append(errs, fmt.Errorf("max tunnels per client %d is negative", c.MaxTunnelsPerClient))
	}
	for i, p := range c.AllowCIDRs {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("allow CIDR #%d is invalid", i+1))
		}
	}
	hosts, err := normalizeHosts(c.Hosts)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.Hosts = hosts
	c.applyDefaults()
	return nil
}

func (c *Config) applyDefaults() {
	setDefault(&c.HeaderTimeout, DefaultHeaderTimeout)
	setDefault(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.MaxTunnels, DefaultMaxTunnels)
	setDefault(&c.TLSPeekTimeout, DefaultTLSPeekTimeout)
	if c.BoundAttempt != "" {
		setDefault(&c.MaxTunnelsPerClient, c.MaxTunnels)
	}
	setDefault(&c.MaxTunnelsPerClient, max(1, c.MaxTunnels/4))
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Attempts == nil {
		c.Attempts = attempt.NewRegistry()
	}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// normalizeHosts returns the pins keyed by normalised name.
func normalizeHosts(in map[string][]netip.Addr) (map[string][]netip.Addr, error) {
	out := make(map[string][]netip.Addr, len(in))
	var errs []error
	for name, addrs := range in {
		host, _, err := engine.NormalizeHost(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("pinning host: %w", err))
			continue
		}
		if len(addrs) == 0 {
			errs = append(errs, fmt.Errorf("pinning host %q: no addresses", name))
			continue
		}
		for _, a := range addrs {
			if !a.IsValid() {
				errs = append(errs, fmt.Errorf("pinning host %q: invalid address", name))
			}
		}
		out[host] = append(out[host], addrs...)
	}
	return out, errors.Join(errs...)
}
