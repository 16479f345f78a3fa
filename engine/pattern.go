package engine

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ValidatePattern checks one allow/deny pattern (the README, Allow lists):
// `example.com`, `*.example.com`, `**.example.com`, `*`, an IP literal or
// CIDR, each with an optional `:port` (IPv6 in brackets when a port
// follows).
func ValidatePattern(p string) error {
	host, port, err := splitPatternPort(p)
	if err != nil {
		return fmt.Errorf("pattern %q: %w", p, err)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("pattern %q: port %q is not 1-65535", p, port)
		}
	}
	switch {
	case host == "*":
		return nil
	case strings.Contains(host, "/"):
		pfx, err := netip.ParsePrefix(host)
		if err != nil {
			return fmt.Errorf("pattern %q: %w", p, err)
		}
		if pfx.Masked() != pfx {
			return fmt.Errorf("pattern %q: CIDR has host bits set (use %s)", p, pfx.Masked())
		}
		return nil
	}
	name := strings.TrimPrefix(strings.TrimPrefix(host, "**."), "*.")
	norm, _, err := NormalizeHost(name)
	if err != nil {
		return fmt.Errorf("pattern %q: %w", p, err)
	}
	if norm != name {
		return fmt.Errorf("pattern %q: write the host as %q (normalised form)", p, norm)
	}
	return nil
}

// splitPatternPort splits an optional ":port" off a pattern: "[v6]:port",
// "[v6]", bare IPv6 (no port), "host:port".
func splitPatternPort(p string) (host, port string, err error) {
	if p == "" {
		return "", "", fmt.Errorf("empty pattern")
	}
	if strings.HasPrefix(p, "[") {
		end := strings.Index(p, "]")
		if end < 0 {
			return "", "", fmt.Errorf("unbalanced brackets")
		}
		host, rest := p[1:end], p[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", "", fmt.Errorf("unexpected %q after ]", rest)
		}
		return host, rest[1:], nil
	}
	if strings.Count(p, ":") > 1 {
		return p, "", nil // bare IPv6 address or prefix
	}
	if i := strings.LastIndexByte(p, ':'); i >= 0 {
		return p[:i], p[i+1:], nil
	}
	return p, "", nil
}
