package engine

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		ip   bool
	}{
		{"plain", "example.com", "example.com", false},
		{"upper case", "ExAmPlE.CoM", "example.com", false},
		{"trailing dot", "example.com.", "example.com", false},
		{"idn", "bücher.example", "xn--bcher-kva.example", false},
		{"punycode kept", "xn--bcher-kva.example", "xn--bcher-kva.example", false},
		{"full-width letters", "ｅｘａｍｐｌｅ.com", "example.com", false},
		{"ideographic full stop", "example。com", "example.com", false},
		{"underscore", "_acme.example.com", "_acme.example.com", false},
		{"dotted quad", "127.0.0.1", "127.0.0.1", true},
		{"dotted quad trailing dot", "127.0.0.1.", "127.0.0.1", true},
		{"decimal", "2130706433", "127.0.0.1", true},
		{"hex", "0x7f000001", "127.0.0.1", true},
		{"hex parts", "0x7f.0.0.0x1", "127.0.0.1", true},
		{"octal", "0177.0.0.01", "127.0.0.1", true},
		{"short", "127.1", "127.0.0.1", true},
		{"short three", "10.1.2", "10.1.0.2", true},
		{"metadata decimal", "2852039166", "169.254.169.254", true},
		{"full-width digits", "１２７.０.０.１", "127.0.0.1", true},
		{"ipv6 brackets", "[::1]", "::1", true},
		{"ipv6 bare", "2001:DB8::1", "2001:db8::1", true},
		{"ipv6 long form", "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", true},
		{"ipv4-mapped ipv6", "[::ffff:127.0.0.1]", "127.0.0.1", true},
		{"ipv4-mapped hex", "::ffff:7f00:1", "127.0.0.1", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ip, err := NormalizeHost(tc.in)
			if err != nil {
				t.Fatalf("NormalizeHost(%q): %v", tc.in, err)
			}
			if got != tc.want || ip != tc.ip {
				t.Fatalf("NormalizeHost(%q) = %q, %v; want %q, %v", tc.in, got, ip, tc.want, tc.ip)
			}
		})
	}
}

func TestNormalizeHostRefuses(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"only dot", "."},
		{"double trailing dot", "example.com.."},
		{"empty label", "a..b"},
		{"leading dot", ".example.com"},
		{"numeric last label not ipv4", "foo.123"},
		{"ipv4 part too big", "256.0.0.1"},
		{"ipv4 too many parts", "1.2.3.4.5"},
		{"short last part too big", "127.16777216"},
		{"bad octal", "09.0.0.1"},
		{"zone", "[fe80::1%eth0]"},
		{"unbalanced bracket", "[::1"},
		{"ipv4 in brackets", "[127.0.0.1]"},
		{"space", "exa mple.com"},
		{"userinfo", "user@example.com"},
		{"slash", "example.com/x"},
		{"label too long", strings.Repeat("a", 64) + ".com"},
		{"name too long", strings.Repeat("abcdefghi.", 26) + "com"},
		{"nul", "example.com\x00.evil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := NormalizeHost(tc.in)
			if err == nil {
				t.Fatalf("NormalizeHost(%q) = %q, want an error", tc.in, got)
			}
			if !errors.Is(err, ErrBadHost) {
				t.Fatalf("error %v does not wrap ErrBadHost", err)
			}
		})
	}
}

// FuzzNormalizeHost checks that a normalised host is a fixed point and only
// ever contains the characters the policy's pattern keys are made of.
func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"example.com", "ExAmPlE.CoM.", "0x7f.1", "[::ffff:127.0.0.1]", "bücher.example", "１２７.０.０.１", "2130706433", "a..b", "foo.123"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ip, err := NormalizeHost(in)
		if err != nil {
			return
		}
		again, ip2, err := NormalizeHost(got)
		if err != nil || again != got || ip2 != ip {
			t.Fatalf("not a fixed point: %q → %q → %q (%v)", in, got, again, err)
		}
		for _, c := range got {
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':'
			if !ok {
				t.Fatalf("NormalizeHost(%q) = %q contains %q", in, got, c)
			}
		}
	})
}
