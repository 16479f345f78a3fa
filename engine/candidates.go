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
	p := strconv.Itoa(port)
	var out []string
	switch {
	case strings.Contains(host, ":"):
		out = ipv6Candidates(host, p)
	case isDottedQuad(host):
		out = ipv4Candidates(host, p)
	default:
		out = domainCandidates(host, p)
	}
	return append(out, "*:"+p, "*")
}

func domainCandidates(host, port string) []string {
	out := make([]string, 0, 4*strings.Count(host, ".")+6)
	out = append(out, host+":"+port, host, "**."+host+":"+port, "**."+host)
	for i := 0; i < len(host); i++ {
		if host[i] != '.' {
			continue
		}
		s := host[i+1:]
		out = append(out, "*."+s+":"+port, "*."+s, "**."+s+":"+port, "**."+s)
	}
	return out
}

func ipv4Candidates(host, port string) []string {
	out := []string{host + ":" + port, host}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return out
	}
	for bits := 32; bits >= 0; bits-- {
		c := netip.PrefixFrom(addr, bits).Masked().String()
		out = append(out, c+":"+port, c)
	}
	return out
}

func ipv6Candidates(host, port string) []string {
	out := []string{"[" + host + "]:" + port, host, "[" + host + "]"}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return out
	}
	if v4, ok := strings.CutPrefix(host, "::ffff:"); ok && strings.Contains(v4, ".") {
		return append(out, ipv4Candidates(v4, port)...)
	}
	for bits := 128; bits >= 0; bits-- {
		c := netip.PrefixFrom(addr, bits).Masked().String()
		out = append(out, "["+c+"]:"+port, c)
	}
	return out
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
