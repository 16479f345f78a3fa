package engine

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Candidates returns every allow/deny pattern that matches host on port,
// most specific first, ending with "*:PORT" and "*": exactly what
// data.regate.lib.patterns.candidates computes in Rego (a differential test
// keeps the two equal). The engine passes it to the policy as
// input.candidates, because building these strings in Go costs a fraction
// of building them in Rego; a policy then looks each one up in an object
// keyed by pattern, O(labels of the host) whatever the number of patterns.
func Candidates(host string, port int) []string {
	b := newCandidateList(host)
	p := strconv.Itoa(port)
	switch {
	case strings.Contains(host, ":"):
		b.ipv6(host, p)
	case isDottedQuad(host):
		b.ipv4(host, p)
	default:
		b.domain(host, p)
	}
	b.add("*:", p)
	b.add("*")
	return b.strings()
}

// candidateList builds the candidates in one buffer, cut into strings at
// the end: a decision allocates a handful of times for them, not once per
// candidate.
type candidateList struct {
	buf  []byte
	ends []int
}

func newCandidateList(host string) *candidateList {
	n := 4*strings.Count(host, ".") + 6
	return &candidateList{buf: make([]byte, 0, n*(len(host)+10)), ends: make([]int, 0, n)}
}

// add appends one candidate made of parts.
func (b *candidateList) add(parts ...string) {
	for _, s := range parts {
		b.buf = append(b.buf, s...)
	}
	b.end()
}

func (b *candidateList) end() { b.ends = append(b.ends, len(b.buf)) }

func (b *candidateList) strings() []string {
	all := string(b.buf)
	out := make([]string, len(b.ends))
	start := 0
	for i, end := range b.ends {
		out[i] = all[start:end]
		start = end
	}
	return out
}

func (b *candidateList) domain(host, port string) {
	b.add(host, ":", port)
	b.add(host)
	b.add("**.", host, ":", port)
	b.add("**.", host)
	for i := 0; i < len(host); i++ {
		if host[i] != '.' {
			continue
		}
		s := host[i+1:]
		b.add("*.", s, ":", port)
		b.add("*.", s)
		b.add("**.", s, ":", port)
		b.add("**.", s)
	}
}

func (b *candidateList) ipv4(host, port string) {
	b.add(host, ":", port)
	b.add(host)
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return
	}
	for bits := 32; bits >= 0; bits-- {
		c := netip.PrefixFrom(addr, bits).Masked()
		b.buf = append(c.AppendTo(b.buf), ':')
		b.add(port)
		b.buf = c.AppendTo(b.buf)
		b.end()
	}
}

func (b *candidateList) ipv6(host, port string) {
	b.add("[", host, "]:", port)
	b.add(host)
	b.add("[", host, "]")
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return
	}
	if v4, ok := strings.CutPrefix(host, "::ffff:"); ok && strings.Contains(v4, ".") {
		b.ipv4(v4, port)
		return
	}
	for bits := 128; bits >= 0; bits-- {
		c := netip.PrefixFrom(addr, bits).Masked()
		b.buf = append(c.AppendTo(append(b.buf, '[')), "]:"...)
		b.add(port)
		b.buf = c.AppendTo(b.buf)
		b.end()
	}
}

// isDottedQuad matches the Rego library's ^[0-9]{1,3}(\.[0-9]{1,3}){3}$.
func isDottedQuad(s string) bool {
	parts := 0
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
			if digits > 3 {
				return false
			}
		case c == '.':
			if digits == 0 {
				return false
			}
			parts++
			digits = 0
		default:
			return false
		}
	}
	return parts == 3 && digits > 0
}

func candidatesTerm(host string, port int) *ast.Term {
	return ast.ArrayTerm(stringTerms(Candidates(host, port))...)
}
