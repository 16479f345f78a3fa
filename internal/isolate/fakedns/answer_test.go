package fakedns

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// query packs a query for name and qtype, changed by edit if not nil.
func query(t testing.TB, name string, qtype uint16, edit func(*dns.Msg)) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x4242
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("packing query: %v", err)
	}
	return b
}

func TestAnswer(t *testing.T) {
	v4, v6 := DefaultPrefixes()
	tests := []struct {
		name    string
		query   []byte
		rcode   int
		answer  uint16 // the type of the one answer; 0 for none
		edns    bool   // an OPT is expected
		noQuest bool   // no question is echoed
	}{
		{"A", query(t, "Example.COM.", dns.TypeA, nil), dns.RcodeSuccess, dns.TypeA, false, false},
		{"AAAA", query(t, "example.com.", dns.TypeAAAA, nil), dns.RcodeSuccess, dns.TypeAAAA, false, false},
		{"HTTPS", query(t, "example.com.", dns.TypeHTTPS, nil), dns.RcodeSuccess, 0, false, false},
		{"SVCB", query(t, "_dns.example.com.", dns.TypeSVCB, nil), dns.RcodeSuccess, 0, false, false},
		{"MX", query(t, "example.com.", dns.TypeMX, nil), dns.RcodeSuccess, 0, false, false},
		{"TXT", query(t, "example.com.", dns.TypeTXT, nil), dns.RcodeSuccess, 0, false, false},
		{"PTR", query(t, "1.0.18.198.in-addr.arpa.", dns.TypePTR, nil), dns.RcodeSuccess, 0, false, false},
		{"ANY", query(t, "example.com.", dns.TypeANY, nil), dns.RcodeSuccess, 0, false, false},
		{"root A", query(t, ".", dns.TypeA, nil), dns.RcodeSuccess, 0, false, false},
		{"class CHAOS", query(t, "version.bind.", dns.TypeTXT, func(m *dns.Msg) {
			m.Question[0].Qclass = dns.ClassCHAOS
		}), dns.RcodeSuccess, 0, false, false},
		{"class CHAOS A", query(t, "example.com.", dns.TypeA, func(m *dns.Msg) {
			m.Question[0].Qclass = dns.ClassCHAOS
		}), dns.RcodeSuccess, 0, false, false},
		{"two questions", query(t, "example.com.", dns.TypeA, func(m *dns.Msg) {
			m.Question = append(m.Question, dns.Question{Name: "example.org.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
		}), dns.RcodeFormatError, 0, false, true},
		{"no question", query(t, "example.com.", dns.TypeA, func(m *dns.Msg) {
			m.Question = nil
		}), dns.RcodeFormatError, 0, false, true},
		{"opcode NOTIFY", query(t, "example.com.", dns.TypeSOA, func(m *dns.Msg) {
			m.Opcode = dns.OpcodeNotify
		}), dns.RcodeNotImplemented, 0, false, false},
		{"opcode UPDATE", query(t, "example.com.", dns.TypeSOA, func(m *dns.Msg) {
			m.Opcode = dns.OpcodeUpdate
		}), dns.RcodeNotImplemented, 0, false, false},
		{"EDNS0", query(t, "example.com.", dns.TypeA, func(m *dns.Msg) {
			m.SetEdns0(4096, true)
		}), dns.RcodeSuccess, dns.TypeA, true, false},
		{"EDNS1", query(t, "example.com.", dns.TypeA, func(m *dns.Msg) {
			m.SetEdns0(4096, false)
			m.Extra[0].(*dns.OPT).SetVersion(1)
		}), dns.RcodeBadVers, 0, true, false},
		{"two OPTs", query(t, "example.com.", dns.TypeA, func(m *dns.Msg) {
			m.SetEdns0(4096, false)
			m.Extra = append(m.Extra, m.Extra[0])
		}), dns.RcodeFormatError, 0, true, false},
		{"escaped dot in a label", query(t, `a\.b.example.com.`, dns.TypeA, nil), dns.RcodeNameError, 0, false, false},
		{"binary label", query(t, `a\000b.example.com.`, dns.TypeA, nil), dns.RcodeNameError, 0, false, false},
		{"space in a label", query(t, `a\032b.example.com.`, dns.TypeAAAA, nil), dns.RcodeNameError, 0, false, false},
		{"underscore", query(t, "_acme.example.com.", dns.TypeA, nil), dns.RcodeSuccess, dns.TypeA, false, false},
		{"truncated question", query(t, "example.com.", dns.TypeA, nil)[:20], dns.RcodeFormatError, 0, false, true},
		{"garbage after the header", append([]byte{0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}, 0xff, 0xfe, 0xfd), dns.RcodeFormatError, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, v4.String(), v6.String(), 16)
			out, err := Answer(tt.query, p)
			if err != nil {
				t.Fatalf("Answer: %v", err)
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(out); err != nil {
				t.Fatalf("unpacking the response: %v", err)
			}
			if resp.Id != 0x4242 || !resp.Response || !resp.RecursionAvailable || !resp.RecursionDesired {
				t.Errorf("header id %#x QR %v RA %v RD %v: want 0x4242 and all set", resp.Id, resp.Response, resp.RecursionAvailable, resp.RecursionDesired)
			}
			if resp.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			req := new(dns.Msg)
			if req.Unpack(tt.query) == nil && !tt.noQuest {
				if len(resp.Question) != 1 || resp.Question[0] != req.Question[0] {
					t.Errorf("question %v, want %v echoed", resp.Question, req.Question)
				}
			} else if len(resp.Question) != 0 {
				t.Errorf("question %v, want none", resp.Question)
			}
			checkAnswer(t, resp, tt.answer, p)
			opt := resp.IsEdns0()
			if tt.edns != (opt != nil) {
				t.Fatalf("OPT %v, want one: %v", opt, tt.edns)
			}
			if opt != nil && (opt.UDPSize() != UDPSize || opt.Version() != 0) {
				t.Errorf("OPT size %d version %d, want %d and 0", opt.UDPSize(), opt.Version(), UDPSize)
			}
			if tt.name == "EDNS0" && !opt.Do() {
				t.Error("DO bit not echoed")
			}
		})
	}
}

// checkAnswer checks that resp has one answer of type want from p (or none
// for 0), for the question's name, with TTL 1.
func checkAnswer(t *testing.T, resp *dns.Msg, want uint16, p *Pool) {
	t.Helper()
	if want == 0 {
		if len(resp.Answer) != 0 {
			t.Errorf("answers %v, want none", resp.Answer)
		}
		return
	}
	if len(resp.Answer) != 1 {
		t.Fatalf("answers %v, want one %s", resp.Answer, dns.TypeToString[want])
	}
	rr := resp.Answer[0]
	if h := rr.Header(); h.Rrtype != want || h.Ttl != TTL || h.Name != resp.Question[0].Name || h.Class != dns.ClassINET {
		t.Errorf("answer header %v, want %s IN TTL %d for %s", h, dns.TypeToString[want], TTL, resp.Question[0].Name)
	}
	var addr netip.Addr
	switch rr := rr.(type) {
	case *dns.A:
		addr, _ = netip.AddrFromSlice(rr.A.To4())
	case *dns.AAAA:
		addr, _ = netip.AddrFromSlice(rr.AAAA)
	}
	name, ok := p.Name(addr)
	if !ok || name != normalize(resp.Question[0].Name) {
		t.Errorf("answer %v maps back to %q, %v; want %s", addr, name, ok, resp.Question[0].Name)
	}
}

func TestAnswerStable(t *testing.T) {
	p := newPool(t, "198.18.0.0/15", "fd00:7267::/64", 16)
	first := answerAddr(t, query(t, "example.com.", dns.TypeA, nil), p)
	again := answerAddr(t, query(t, "EXAMPLE.com.", dns.TypeA, nil), p)
	other := answerAddr(t, query(t, "example.org.", dns.TypeA, nil), p)
	if first != again || first == other {
		t.Errorf("example.com %v, EXAMPLE.com %v, example.org %v: want the first two equal, the third apart", first, again, other)
	}
}

func answerAddr(t *testing.T, q []byte, p *Pool) netip.Addr {
	t.Helper()
	out, err := Answer(q, p)
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(out); err != nil || len(resp.Answer) != 1 {
		t.Fatalf("response %v, %v: want one answer", resp, err)
	}
	a, _ := netip.AddrFromSlice(resp.Answer[0].(*dns.A).A.To4())
	return a
}

func TestAnswerFullPool(t *testing.T) {
	p := newPool(t, "198.18.0.0/15", "fd00:7267::/64", 1)
	defer p.Hold(p.Lookup4("held.example"))()
	defer p.Hold(p.Lookup6("held.example"))()
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		out, err := Answer(query(t, "new.example.", qtype, nil), p)
		if err != nil {
			t.Fatalf("Answer: %v", err)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(out); err != nil {
			t.Fatalf("unpacking: %v", err)
		}
		if resp.Rcode != dns.RcodeServerFailure || len(resp.Answer) != 0 {
			t.Errorf("%s: rcode %s answers %v, want SERVFAIL and none", dns.TypeToString[qtype], dns.RcodeToString[resp.Rcode], resp.Answer)
		}
	}
}

func TestAnswerDrops(t *testing.T) {
	response := query(t, "example.com.", dns.TypeA, func(m *dns.Msg) { m.Response = true })
	tests := []struct {
		name  string
		query []byte
		err   error
	}{
		{"empty", nil, ErrShort},
		{"short garbage", []byte{0xde, 0xad, 0xbe, 0xef}, ErrShort},
		{"a response", response, ErrResponse},
	}
	p := newPool(t, "198.18.0.0/15", "fd00:7267::/64", 16)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Answer(tt.query, p)
			if !errors.Is(err, tt.err) || out != nil {
				t.Errorf("Answer = %x, %v; want nothing and %v", out, err, tt.err)
			}
		})
	}
}

func TestAnswerLongNameFits512(t *testing.T) {
	label := "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk" // 63
	name := label + "." + label + "." + label + "." + label[:61] + "."
	p := newPool(t, "198.18.0.0/15", "fd00:7267::/64", 16)
	out, err := Answer(query(t, name, dns.TypeAAAA, nil), p)
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if len(out) > 512 {
		t.Errorf("response of %d bytes to a query without EDNS0, want at most 512", len(out))
	}
}
