package proxy

import (
	"net/netip"
)

// Address classes the SSRF guard refuses. Each is the suffix of a
// decision rule ("ssrf:loopback") and a metric label.
const (
	classLoopback    = "loopback"
	classUnspecified = "unspecified"
	classLinkLocal   = "link-local"
	classMetadata    = "metadata"
	classPrivate     = "private"
	classCGNAT       = "cgnat"
	classMulticast   = "multicast"
	classBroadcast   = "broadcast"
	classThisNetwork = "this-network"
	classReserved    = "reserved"
	classProxyLoop   = "proxy-loop"
)

// classPhrases word each class for a deny reason; the address itself is
// never put in a reason.
var classPhrases = map[string]string{
	classLoopback:    "a loopback address",
	classUnspecified: "an unspecified address",
	classLinkLocal:   "a link-local address",
	classMetadata:    "a cloud metadata address",
	classPrivate:     "a private address",
	classCGNAT:       "a shared (CGNAT) address",
	classMulticast:   "a multicast address",
	classBroadcast:   "the broadcast address",
	classThisNetwork: "a \"this network\" (0.0.0.0/8) address",
	classReserved:    "a reserved address",
	classProxyLoop:   "the proxy's own listening address",
}

// ssrfReason is the deny reason for class.
func ssrfReason(class string) string {
	if class == classProxyLoop {
		return "destination resolves to " + classPhrases[class]
	}
	return "destination resolves to " + classPhrases[class] + " (allow it with --allow-cidr or allow_cidrs)"
}

type classRange struct {
	prefix netip.Prefix
	class  string
}

func mustRanges(pairs ...string) []classRange {
	out := make([]classRange, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, classRange{netip.MustParsePrefix(pairs[i]), pairs[i+1]})
	}
	return out
}

// The tables are immutable after initialisation; order matters (most
// specific first).
var (
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack
		netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
		netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
		netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud
		netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	}
	v4Ranges = mustRanges(
		"0.0.0.0/32", classUnspecified,
		"255.255.255.255/32", classBroadcast,
		"0.0.0.0/8", classThisNetwork,
		"127.0.0.0/8", classLoopback,
		"169.254.0.0/16", classLinkLocal,
		"10.0.0.0/8", classPrivate,
		"172.16.0.0/12", classPrivate,
		"192.168.0.0/16", classPrivate,
		"100.64.0.0/10", classCGNAT,
		"224.0.0.0/4", classMulticast,
		"240.0.0.0/4", classReserved,
		"192.0.0.0/24", classReserved, // IETF protocol assignments
		"192.0.2.0/24", classReserved, // TEST-NET-1
		"198.18.0.0/15", classReserved, // benchmarking
		"198.51.100.0/24", classReserved, // TEST-NET-2
		"203.0.113.0/24", classReserved, // TEST-NET-3
	)
	v6Ranges = mustRanges(
		"::/128", classUnspecified,
		"::1/128", classLoopback,
		"fe80::/10", classLinkLocal,
		"fec0::/10", classPrivate, // deprecated site-local
		"fc00::/7", classPrivate,
		"ff00::/8", classMulticast,
		"100::/64", classReserved, // discard-only
		"2001:db8::/32", classReserved, // documentation
		"64:ff9b:1::/48", classPrivate, // local-use NAT64
	)
	mapped4   = netip.MustParsePrefix("::ffff:0:0/96")
	compat4   = netip.MustParsePrefix("::/96")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	teredo    = netip.MustParsePrefix("2001::/32")
)

// classify returns the class of an address the guard refuses, or "" for a
// public address. IPv6 forms that embed an IPv4 address are judged by it.
func classify(a netip.Addr) string {
	a = a.WithZone("")
	for _, m := range metadataAddrs {
		if a == m {
			return classMetadata
		}
	}
	if a.Is4() {
		return lookupRange(v4Ranges, a)
	}
	if c := lookupRange(v6Ranges, a); c != "" {
		return c
	}
	for _, v4 := range embeddedIPv4(a) {
		if c := classify(v4); c != "" {
			return c
		}
	}
	return ""
}

func lookupRange(ranges []classRange, a netip.Addr) string {
	for _, r := range ranges {
		if r.prefix.Contains(a) {
			return r.class
		}
	}
	return ""
}

// embeddedIPv4 returns the IPv4 addresses an IPv6 address carries in the
// mapped, compatible, NAT64, 6to4 and Teredo forms.
func embeddedIPv4(a netip.Addr) []netip.Addr {
	b := a.As16()
	last := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	switch {
	case mapped4.Contains(a), compat4.Contains(a), nat64.Contains(a):
		return []netip.Addr{last}
	case sixToFour.Contains(a):
		return []netip.Addr{netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})}
	case teredo.Contains(a):
		server := netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		return []netip.Addr{client, server}
	}
	return nil
}
