package suggest

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/regate/regate/engine"
)

// grouper turns the destinations of one port class into patterns.
type grouper struct {
	opts  Options
	kept  map[Target]bool
	cands map[Target][]string // the patterns matching each kept destination
	out   []Suggestion
}

// class groups the destinations of one port class (0: 80 and 443).
func (g *grouper) class(port int, dests []*Dest) {
	suffix := ""
	if port != 0 {
		suffix = ":" + strconv.Itoa(port)
	}
	root := &node{}
	var ips []*Dest
	for _, d := range dests {
		if isIP(d.Host) {
			ips = append(ips, d)
			continue
		}
		root.add(strings.Split(d.Host, "."), d)
	}
	g.addresses(ips, suffix)
	g.visit(root, "", suffix)
}

// node is one domain name in a tree of the destinations' names.
type node struct {
	children map[string]*node
	dests    []*Dest // destinations whose host is this name
}

// add files d under labels, read right to left.
func (n *node) add(labels []string, d *Dest) {
	for i := len(labels) - 1; i >= 0; i-- {
		if n.children == nil {
			n.children = map[string]*node{}
		}
		c := n.children[labels[i]]
		if c == nil {
			c = &node{}
			n.children[labels[i]] = c
		}
		n = c
	}
	n.dests = append(n.dests, d)
}

// all is every destination at and below n.
func (n *node) all() []*Dest {
	out := slices.Clone(n.dests)
	for _, c := range n.children {
		out = append(out, c.all()...)
	}
	return out
}

// visit collapses the sub-domains of name into one pattern when enough
// siblings were seen and name is below a public suffix; otherwise it
// suggests name itself if seen, and looks at each child.
func (g *grouper) visit(n *node, name, suffix string) {
	if name != "" && len(n.children) >= g.opts.MinSiblings && belowPublicSuffix(name) {
		pat := "*." + name // sub-domains at any depth
		if len(n.dests) > 0 {
			pat = "**." + name // and name itself
		}
		if !g.coversKept(pat + suffix) {
			g.out = append(g.out, Suggestion{Pattern: pat + suffix, Dests: n.all()})
			return
		}
	}
	if len(n.dests) > 0 {
		g.exact(name, n.dests, suffix)
	}
	for _, label := range slices.Sorted(maps.Keys(n.children)) {
		child := label
		if name != "" {
			child += "." + name
		}
		g.visit(n.children[label], child, suffix)
	}
}

// belowPublicSuffix reports whether a wildcard under name stays inside one
// registrable domain: name is not itself a public suffix (com, co.uk,
// github.io).
func belowPublicSuffix(name string) bool {
	ps, _ := publicsuffix.PublicSuffix(name)
	return ps != name && strings.HasSuffix(name, "."+ps)
}

// exact suggests host (a name or an address) for dests; a pattern without
// a port that would also allow a kept destination on another port is
// written once per port instead.
func (g *grouper) exact(host string, dests []*Dest, suffix string) {
	if pat := addrPattern(host, suffix); !g.coversKept(pat) {
		g.out = append(g.out, Suggestion{Pattern: pat, Dests: dests})
		return
	}
	for _, d := range dests {
		g.out = append(g.out, Suggestion{Pattern: addrPattern(host, ":"+strconv.Itoa(d.Port)), Dests: []*Dest{d}})
	}
}

// addresses suggests exact addresses, or the CIDR of Options.Prefix4/6
// that holds at least MinSiblings of them.
func (g *grouper) addresses(dests []*Dest, suffix string) {
	nets := map[netip.Prefix]map[netip.Addr][]*Dest{}
	for _, d := range dests {
		a := netip.MustParseAddr(d.Host)
		bits := g.opts.Prefix4
		if a.Is6() {
			bits = g.opts.Prefix6
		}
		if bits == 0 {
			bits = a.BitLen()
		}
		p, _ := a.Prefix(bits)
		if nets[p] == nil {
			nets[p] = map[netip.Addr][]*Dest{}
		}
		nets[p][a] = append(nets[p][a], d)
	}
	for _, p := range slices.SortedFunc(maps.Keys(nets), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		addrs := nets[p]
		if !p.IsSingleIP() && len(addrs) >= g.opts.MinSiblings {
			pat := addrPattern(p.String(), suffix)
			if !g.coversKept(pat) {
				var all []*Dest
				for _, ds := range addrs {
					all = append(all, ds...)
				}
				g.out = append(g.out, Suggestion{Pattern: pat, Dests: all})
				continue
			}
		}
		for _, a := range slices.SortedFunc(maps.Keys(addrs), netip.Addr.Compare) {
			g.exact(a.String(), addrs[a], suffix)
		}
	}
}

// addrPattern writes an address or CIDR with an optional port suffix
// (IPv6 bracketed then).
func addrPattern(s, suffix string) string {
	if suffix != "" && strings.Contains(s, ":") {
		return "[" + s + "]" + suffix
	}
	return s + suffix
}

// coversKept reports whether pattern would allow a kept destination.
func (g *grouper) coversKept(pattern string) bool {
	if g.cands == nil {
		g.cands = map[Target][]string{}
		for k := range g.kept {
			g.cands[k] = engine.Candidates(k.Host, k.Port)
		}
	}
	for _, c := range g.cands {
		if slices.Contains(c, pattern) {
			return true
		}
	}
	return false
}
