// Package suggest computes the smallest allow list that covers the
// connections a policy denied or audited: exact hosts, sibling sub-domains
// collapsed to *.parent / **.parent (never at or above a public suffix),
// exact addresses or, when asked, CIDRs. It renders the list as regate's
// configuration, a data document or a Rego module, and writes Rego tests
// that guard it.
package suggest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/regate/regate/engine"
)

// DefaultMinSiblings is how many sibling sub-domains a parent needs before
// they collapse into one pattern.
const DefaultMinSiblings = 3

// Options tune the grouping.
type Options struct {
	// MinSiblings: a parent domain covers its sub-domains with a wildcard
	// only when at least this many distinct children were seen (0: 3).
	MinSiblings int
	// Prefix4 and Prefix6 group addresses into CIDRs of this length when
	// MinSiblings addresses of one network were seen; 0 keeps exact
	// addresses (/32, /128).
	Prefix4, Prefix6 int
	// KeepDenied are destinations that stay denied: they are never
	// suggested and no pattern covers them.
	KeepDenied []Target
}

// Target is a destination: a normalised host and a port.
type Target struct {
	Host string
	Port int
}

func (t Target) String() string {
	if strings.Contains(t.Host, ":") {
		return "[" + t.Host + "]:" + strconv.Itoa(t.Port)
	}
	return t.Host + ":" + strconv.Itoa(t.Port)
}

// ParseTarget reads HOST:PORT or HOST (port 443), normalising the host.
func ParseTarget(s string) (Target, error) {
	host, port := s, "443"
	if h, p, ok := cutPort(s); ok {
		host, port = h, p
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return Target{}, fmt.Errorf("destination %q: port %q is not 1-65535", s, port)
	}
	norm, _, err := engine.NormalizeHost(strings.Trim(host, "[]"))
	if err != nil {
		return Target{}, fmt.Errorf("destination %q: %w", s, err)
	}
	if strings.ContainsAny(norm, "*/") {
		return Target{}, fmt.Errorf("destination %q: want a host, not a pattern", s)
	}
	return Target{Host: norm, Port: n}, nil
}

// cutPort splits "host:port" and "[v6]:port"; a bare IPv6 address has none.
func cutPort(s string) (host, port string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || (strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[")) {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// Observation is one denied or audited connection.
type Observation struct {
	Target
	HostIsIP  bool
	AttemptID string
	Labels    map[string]string
	Rule      string
	// Input is the logged input, for the tests (the first one seen of a
	// destination is kept).
	Input json.RawMessage
}

// Dest is one observed destination and what was seen of it.
type Dest struct {
	Target
	HostIsIP    bool
	Connections int
	Attempts    []string // sorted, distinct; "" is anonymous
	Labels      []string // "key=value", sorted, distinct
	Rules       []string
	Input       json.RawMessage // the first logged input
}

// Suggestion is one allow pattern and the destinations it covers.
type Suggestion struct {
	Pattern string
	Dests   []*Dest
}

// Connections is how many observed connections the pattern covers.
func (s *Suggestion) Connections() int {
	n := 0
	for _, d := range s.Dests {
		n += d.Connections
	}
	return n
}

// Result is a suggested allow list.
type Result struct {
	Allow []Suggestion
	// Kept are the KeepDenied destinations, with what was seen of them.
	Kept []*Dest
}

// Suggest groups obs into the smallest allow list under opts. Patterns
// are sorted; each is valid allow-list syntax.
func Suggest(obs []Observation, opts Options) (Result, error) {
	if opts.MinSiblings <= 0 {
		opts.MinSiblings = DefaultMinSiblings
	}
	if opts.Prefix4 < 0 || opts.Prefix4 > 32 || opts.Prefix6 < 0 || opts.Prefix6 > 128 {
		return Result{}, fmt.Errorf("CIDR prefix %d/%d: want 0-32 for IPv4, 0-128 for IPv6", opts.Prefix4, opts.Prefix6)
	}
	dests := collect(obs)
	g := grouper{opts: opts, kept: map[Target]bool{}}
	var res Result
	for _, k := range opts.KeepDenied {
		g.kept[k] = true
		d := dests[k]
		if d == nil {
			d = &Dest{Target: k, HostIsIP: isIP(k.Host)}
		}
		res.Kept = append(res.Kept, d)
		delete(dests, k)
	}
	// One pattern space per port class: 80 and 443 are written without a
	// port (which also covers the other), any other port keeps it.
	classes := map[int][]*Dest{}
	for _, d := range dests {
		classes[portClass(d.Port)] = append(classes[portClass(d.Port)], d)
	}
	for _, class := range slices.Sorted(maps.Keys(classes)) {
		g.class(class, classes[class])
	}
	for _, s := range g.out {
		if err := engine.ValidatePattern(s.Pattern); err != nil {
			return Result{}, fmt.Errorf("suggesting: %w", err)
		}
		slices.SortFunc(s.Dests, func(a, b *Dest) int { return strings.Compare(a.String(), b.String()) })
	}
	slices.SortFunc(g.out, func(a, b Suggestion) int { return strings.Compare(a.Pattern, b.Pattern) })
	res.Allow = g.out
	return res, nil
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// portClass is 0 for the ports written without a suffix, else the port.
func portClass(port int) int {
	if port == 80 || port == 443 {
		return 0
	}
	return port
}

// collect merges observations per destination.
func collect(obs []Observation) map[Target]*Dest {
	out := map[Target]*Dest{}
	for _, o := range obs {
		d := out[o.Target]
		if d == nil {
			d = &Dest{Target: o.Target, HostIsIP: o.HostIsIP, Input: o.Input}
			out[o.Target] = d
		}
		d.Connections++
		d.Attempts = addSorted(d.Attempts, o.AttemptID)
		for k, v := range o.Labels {
			d.Labels = addSorted(d.Labels, k+"="+v)
		}
		if o.Rule != "" {
			d.Rules = addSorted(d.Rules, o.Rule)
		}
	}
	return out
}

func addSorted(s []string, v string) []string {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}
