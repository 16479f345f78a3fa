package fakedns

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// TTL is the time to live of every answer, in seconds: short, so that a
// client asks again rather than keeping an address whose entry was evicted.
const TTL = 1

// UDPSize is the EDNS0 payload size announced in responses (the DNS flag day
// 2020 value: no IP fragmentation on any common path).
const UDPSize = 1232

// headerLen is the length of the fixed DNS message header.
const headerLen = 12

var (
	// ErrShort is returned for a message shorter than a DNS header: there is
	// no id to answer to, so the caller drops it.
	ErrShort = errors.New("message shorter than a DNS header")
	// ErrResponse is returned for a message with QR set: answering responses
	// could loop between two servers, so the caller drops it.
	ErrResponse = errors.New("message is a response, not a query")
)

// Answer returns the response to one DNS query message, answered from pool
// and never forwarded anywhere:
//
//   - A and AAAA in class IN get one record from the pool with TTL [TTL];
//     a full pool (every entry held) gives SERVFAIL;
//   - HTTPS, SVCB and every other type, and every other class, get NOERROR
//     with no answer: the client must learn no real endpoint or hint;
//   - a name that is not a host name (labels of letters, digits, '-' and '_'
//     of 1 to 63 bytes) gets NXDOMAIN: the message is well formed, the name
//     just does not exist here;
//   - a message that does not unpack, or has other than one question, or more
//     than one OPT record, gets FORMERR; an opcode other than QUERY gets
//     NOTIMP; an EDNS version other than 0 gets BADVERS.
//
// The response keeps the query's id, opcode, RD bit and question (with its
// case), sets QR and RA, and carries an OPT record with [UDPSize] when the
// query had one. Answer returns an error, and no response, only for
// messages it must not answer: [ErrShort] and [ErrResponse].
func Answer(query []byte, pool *Pool) ([]byte, error) {
	if len(query) < headerLen {
		return nil, ErrShort
	}
	if query[2]&0x80 != 0 {
		return nil, ErrResponse
	}
	req := new(dns.Msg)
	if err := req.Unpack(query); err != nil {
		return pack(formErr(query))
	}
	return pack(respond(req, pool))
}

// formErr is the FORMERR response to a query that does not unpack, built from
// its header alone.
func formErr(query []byte) *dns.Msg {
	m := new(dns.Msg)
	m.Id = uint16(query[0])<<8 | uint16(query[1])
	m.Opcode = int(query[2]>>3) & 0xf
	m.RecursionDesired = query[2]&0x01 != 0
	m.Response, m.RecursionAvailable = true, true
	m.Rcode = dns.RcodeFormatError
	return m
}

// respond builds the response to the unpacked query req.
func respond(req *dns.Msg, pool *Pool) *dns.Msg {
	m := new(dns.Msg)
	m.Id, m.Opcode, m.RecursionDesired = req.Id, req.Opcode, req.RecursionDesired
	m.Response, m.RecursionAvailable, m.Compress = true, true, true
	if len(req.Question) == 1 {
		m.Question = req.Question
	}
	opts := 0
	var opt *dns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			opts++
			opt = o
		}
	}
	if opts > 0 {
		m.SetEdns0(UDPSize, opt.Do())
	}
	switch {
	case req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1 || opts > 1:
		m.Rcode = dns.RcodeFormatError
	case opt != nil && opt.Version() != 0:
		m.Rcode = dns.RcodeBadVers
	default:
		m.Rcode, m.Answer = answerQuestion(req.Question[0], pool)
	}
	return m
}

// answerQuestion returns the rcode and answer records for q.
func answerQuestion(q dns.Question, pool *Pool) (int, []dns.RR) {
	if !isHostName(q.Name) {
		return dns.RcodeNameError, nil
	}
	if q.Qclass != dns.ClassINET || q.Name == "." {
		return dns.RcodeSuccess, nil
	}
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: TTL}
	switch q.Qtype {
	case dns.TypeA:
		addr := pool.Lookup4(q.Name)
		if !addr.IsValid() {
			return dns.RcodeServerFailure, nil
		}
		return dns.RcodeSuccess, []dns.RR{&dns.A{Hdr: hdr, A: addr.AsSlice()}}
	case dns.TypeAAAA:
		addr := pool.Lookup6(q.Name)
		if !addr.IsValid() {
			return dns.RcodeServerFailure, nil
		}
		return dns.RcodeSuccess, []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: addr.AsSlice()}}
	default:
		return dns.RcodeSuccess, nil
	}
}

// isHostName reports whether name, in the presentation format miekg/dns
// unpacks to, is "." or a fully qualified host name: labels of 1 to 63
// letters, digits, '-' or '_', 253 bytes at most without the final dot. Any
// escaped byte (a dot or binary inside a label) makes it false.
func isHostName(name string) bool {
	if name == "." {
		return true
	}
	if len(name) < 2 || len(name) > 254 || name[len(name)-1] != '.' {
		return false
	}
	label := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 || label > 63 {
				return false
			}
			label = 0
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			label++
		default:
			return false
		}
	}
	return true
}

// pack packs m; a failure is the package's own bug, reported as an error.
func pack(m *dns.Msg) ([]byte, error) {
	b, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing DNS response: %w", err)
	}
	return b, nil
}
