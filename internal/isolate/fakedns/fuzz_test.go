package fakedns

import (
	"testing"

	"github.com/miekg/dns"
)

func FuzzAnswer(f *testing.F) {
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeHTTPS, dns.TypeMX, dns.TypeANY} {
		f.Add(query(f, "example.com.", qtype, nil))
	}
	f.Add(query(f, "example.com.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(4096, true) }))
	f.Add(query(f, `a\000b.example.`, dns.TypeA, nil))
	f.Add(query(f, "example.com.", dns.TypeA, nil)[:20])
	f.Add([]byte{0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c})
	v4, v6 := DefaultPrefixes()
	f.Fuzz(func(t *testing.T, q []byte) {
		// A tiny pool, so that eviction runs too.
		p, err := NewPool(v4, v6, 2)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			out, err := Answer(q, p)
			if err != nil {
				if out != nil {
					t.Fatalf("Answer returned %x with error %v", out, err)
				}
				return
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(out); err != nil {
				t.Fatalf("response %x does not unpack: %v", out, err)
			}
			if id := uint16(q[0])<<8 | uint16(q[1]); resp.Id != id || !resp.Response {
				t.Fatalf("response id %#x QR %v, want %#x and QR", resp.Id, resp.Response, id)
			}
			if len(resp.Answer) > 1 || len(resp.Question) > 1 {
				t.Fatalf("response %v: more than one answer or question", resp)
			}
		}
	})
}
