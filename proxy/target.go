package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/regate/regate/engine"
)

// errBadTarget is wrapped by every destination parse error (400 / SOCKS5
// 0x01).
var errBadTarget = errors.New("invalid destination")

// Dest is a destination as the client named it and the policy sees it:
// build it with NewDest or parseDest, which normalise the host.
type Dest struct {
	Host string // normalised (engine.NormalizeHost)
	Port int
	IsIP bool // the client named an address, not a name
	// Fake is the fake-IP address a transparent flow connected to, when
	// Host is the name regate's DNS handed it out for
	// (input.transparent.addr); the zero Addr otherwise.
	Fake netip.Addr
}

func (t Dest) String() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// parseDest parses "host:port", "[v6]:port", and, when defaultPort is
// non-zero, a bare "host" or "[v6]". The host is normalised with
// engine.NormalizeHost.
func parseDest(s string, defaultPort int) (Dest, error) {
	host, portStr, err := splitHostPort(s)
	if err != nil {
		return Dest{}, fmt.Errorf("%w %q: %v", errBadTarget, s, err)
	}
	port := defaultPort
	if portStr != "" || defaultPort == 0 {
		if port, err = parsePort(portStr); err != nil {
			return Dest{}, fmt.Errorf("%w %q: %v", errBadTarget, s, err)
		}
	}
	return NewDest(host, port)
}

// NewDest normalises host (a name or an address literal) for port.
func NewDest(host string, port int) (Dest, error) {
	if port < 1 || port > 65535 {
		return Dest{}, fmt.Errorf("%w: port %d out of range", errBadTarget, port)
	}
	norm, isIP, err := engine.NormalizeHost(host)
	if err != nil {
		return Dest{}, fmt.Errorf("%w: %w", errBadTarget, err)
	}
	return Dest{Host: norm, Port: port, IsIP: isIP}, nil
}

// splitHostPort splits off an optional port; IPv6 literals must be
// bracketed when a port follows.
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("missing ']'")
		}
		host, rest := s[1:end], s[end+1:]
		if host == "" {
			return "", "", errors.New("empty host")
		}
		if rest == "" {
			return host, "", nil
		}
		if rest[0] != ':' {
			return "", "", errors.New("junk after ']'")
		}
		return host, rest[1:], nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		host = s
	} else {
		host, port = s[:i], s[i+1:]
		if strings.IndexByte(host, ':') >= 0 {
			return "", "", errors.New("IPv6 address must be in brackets")
		}
		if port == "" {
			return "", "", errors.New("empty port")
		}
	}
	if host == "" {
		return "", "", errors.New("empty host")
	}
	return host, port, nil
}

func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing port")
	}
	if len(s) > 5 {
		return 0, fmt.Errorf("port %q out of range", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("port %q is not a number", s)
		}
		n = n*10 + int(s[i]-'0')
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q out of range", s)
	}
	return n, nil
}
