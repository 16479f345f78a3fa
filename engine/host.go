package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrBadHost is wrapped by every error NormalizeHost returns.
var ErrBadHost = errors.New("invalid host")

// idnaProfile maps the way a resolver looks names up (UTS #46, non
// transitional, so "ß" stays distinct from "ss"), so that full-width letters,
// ideographic full stops and upper case all reach the policy in one spelling.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.StrictDomainName(false),
	idna.ValidateLabels(true),
	idna.VerifyDNSLength(false),
)

// NormalizeHost returns host as the policy sees it (ARCHITECTURE.md, Policy
// input) and whether it is an IP literal: lower case, no trailing dot, IDNA
// → punycode, IPv6 without brackets, IPv4-mapped IPv6 as its IPv4, and
// every IPv4 spelling a resolver would accept (decimal "2130706433", octal
// "0177.1", hex "0x7f.0.0.1", short "127.1") canonicalised to a dotted quad.
// A name whose last label is numeric but is no valid IPv4 is refused, as
// WHATWG URL does.
func NormalizeHost(raw string) (host string, isIP bool, err error) {
	if raw == "" {
		return "", false, fmt.Errorf("%w: empty", ErrBadHost)
	}
	if len(raw) > 1024 {
		return "", false, fmt.Errorf("%w: too long", ErrBadHost)
	}
	if !utf8.ValidString(raw) || strings.ContainsRune(raw, utf8.RuneError) {
		return "", false, fmt.Errorf("%w: %q is not valid UTF-8", ErrBadHost, raw)
	}
	if strings.HasPrefix(raw, "[") || strings.Contains(raw, ":") {
		return normalizeIPv6(raw)
	}
	ascii, err := idnaProfile.ToASCII(raw)
	if err != nil {
		return "", false, fmt.Errorf("%w: %q: %v", ErrBadHost, raw, err)
	}
	ascii = strings.TrimSuffix(ascii, ".")
	if ascii == "" || strings.HasSuffix(ascii, ".") || strings.HasPrefix(ascii, ".") || strings.Contains(ascii, "..") {
		return "", false, fmt.Errorf("%w: %q has an empty label", ErrBadHost, raw)
	}
	if endsInNumber(ascii) {
		addr, err := parseIPv4(ascii)
		if err != nil {
			return "", false, fmt.Errorf("%w: %q: %v", ErrBadHost, raw, err)
		}
		return addr.String(), true, nil
	}
	if err := checkDomain(ascii); err != nil {
		return "", false, fmt.Errorf("%w: %q: %v", ErrBadHost, raw, err)
	}
	return ascii, false, nil
}

func normalizeIPv6(raw string) (string, bool, error) {
	s := raw
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") {
			return "", false, fmt.Errorf("%w: %q: unbalanced brackets", ErrBadHost, raw)
		}
		s = s[1 : len(s)-1]
	}
	if strings.Contains(s, "%") {
		return "", false, fmt.Errorf("%w: %q: zoned IPv6 addresses are not allowed", ErrBadHost, raw)
	}
	addr, err := netip.ParseAddr(s)
	if err != nil || !addr.Is6() {
		return "", false, fmt.Errorf("%w: %q is not an IPv6 address", ErrBadHost, raw)
	}
	return addr.Unmap().String(), true, nil
}

// endsInNumber reports whether the last label is all digits or a 0x number,
// the WHATWG "ends in a number" check that routes a host to the IPv4 parser.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if allDigits(last) {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return allHex(last[2:])
	}
	return false
}

// parseIPv4 implements the WHATWG IPv4 parser (the inet_aton forms).
func parseIPv4(host string) (netip.Addr, error) {
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, errors.New("more than four IPv4 parts")
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		n, err := parseIPv4Number(p)
		if err != nil {
			return netip.Addr{}, err
		}
		nums[i] = n
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, fmt.Errorf("IPv4 part %d out of range", i+1)
		}
		v |= n << (8 * (3 - i))
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, errors.New("last IPv4 part out of range")
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

func parseIPv4Number(p string) (uint64, error) {
	base := 10
	switch {
	case p == "":
		return 0, errors.New("empty IPv4 part")
	case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
		p, base = p[2:], 16
		if p == "" {
			return 0, nil
		}
	case len(p) >= 2 && p[0] == '0':
		p, base = p[1:], 8
	}
	if len(p) > 12 {
		return 0, errors.New("IPv4 part out of range")
	}
	n, err := strconv.ParseUint(p, base, 64)
	if err != nil {
		return 0, fmt.Errorf("IPv4 part %q is not a number", p)
	}
	return n, nil
}

// checkDomain accepts LDH labels (and "_", common in real names) of at most
// 63 bytes, 253 in all.
func checkDomain(host string) error {
	if len(host) > 253 {
		return errors.New("name longer than 253 bytes")
	}
	for label := range strings.SplitSeq(host, ".") {
		if len(label) > 63 {
			return errors.New("label longer than 63 bytes")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed in a host name", c)
			}
		}
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
