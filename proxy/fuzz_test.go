package proxy

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/regate/regate/engine"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in          string
		defaultPort int
		want        string
		isIP        bool
		ok          bool
	}{
		{"example.com:443", 0, "example.com:443", false, true},
		{"EXAMPLE.com.:443", 0, "example.com:443", false, true},
		{"[::1]:8080", 0, "[::1]:8080", true, true},
		{"[::ffff:10.0.0.1]:1", 0, "10.0.0.1:1", true, true},
		{"0x7f.1:80", 0, "127.0.0.1:80", true, true},
		{"example.com", 80, "example.com:80", false, true},
		{"[2001:db8::1]", 80, "[2001:db8::1]:80", true, true},
		{"example.com", 0, "", false, false},
		{"example.com:", 0, "", false, false},
		{"example.com:0", 0, "", false, false},
		{"example.com:65536", 0, "", false, false},
		{"example.com:+80", 0, "", false, false},
		{"example.com:0x50", 0, "", false, false},
		{"::1:80", 0, "", false, false},
		{"[::1:80", 0, "", false, false},
		{"[::1]x:80", 0, "", false, false},
		{"[]:80", 0, "", false, false},
		{":80", 0, "", false, false},
		{"a b:80", 0, "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseDest(tc.in, tc.defaultPort)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, errBadTarget) {
					t.Fatalf("error %v does not wrap errBadTarget", err)
				}
				return
			}
			if got.String() != tc.want || got.IsIP != tc.isIP {
				t.Fatalf("got %s ip=%v, want %s ip=%v", got, got.IsIP, tc.want, tc.isIP)
			}
		})
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"example.com:443", "[::1]:80", "[fe80::1%eth0]:1", "0x7f.1:8080",
		"ａｂ.test:1", "a..b:1", "[::ffff:1.2.3.4]:65535", "x:99999", "::1:80", "[:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseDest(s, 0)
		if err != nil {
			return
		}
		if got.Port < 1 || got.Port > 65535 || got.Host == "" {
			t.Fatalf("%q parsed to %+v", s, got)
		}
		// The normal form is stable: parsing it again gives the same target.
		again, err := parseDest(got.String(), 0)
		if err != nil || again != got {
			t.Fatalf("%q → %s → %+v, %v", s, got, again, err)
		}
		if h, isIP, err := engine.NormalizeHost(got.Host); err != nil || h != got.Host || isIP != got.IsIP {
			t.Fatalf("host %q not normalised", got.Host)
		}
	})
}

func FuzzSOCKS5Handshake(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 1, 187})
	f.Add([]byte{5, 1, 2, 1, 2, 'a', '1', 3, 't', 'o', 'k', 5, 1, 0, 1, 127, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{4, 1, 0, 80, 127, 0, 0, 1, 0})
	f.Add([]byte{5, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		methods, err := readGreeting(r)
		if err != nil {
			return
		}
		if len(methods) == 0 {
			t.Fatal("greeting without methods accepted")
		}
		if bytes.IndexByte(methods, methodUserPass) >= 0 {
			if _, _, err := readUserPass(r); err != nil {
				return
			}
		}
		req, err := readRequest(r)
		var se *socksError
		if errors.As(err, &se) && se.reply == replySucceeded {
			t.Fatal("a failed request carries the success reply")
		}
		if err != nil {
			return
		}
		if req.cmd != cmdConnect || req.host == "" || req.port < 0 || req.port > 65535 {
			t.Fatalf("accepted %+v", req)
		}
		if tg, err := NewDest(req.host, req.port); err == nil && (tg.Port == 0 || tg.Host == "") {
			t.Fatalf("target %+v", tg)
		}
	})
}

func TestFraming(t *testing.T) {
	const abs = "http://a.test/"
	tests := []struct {
		name   string
		stream string
		want   []string // per head: "" for ok, or the error
	}{
		{"simple", "GET " + abs + " HTTP/1.1\r\nHost: a.test\r\n\r\n", []string{""}},
		{"content-length body then next", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /x HTTP/1.1\r\nGET / HTTP/1.1\r\n\r\n", []string{"", ""}},
		{"chunked with trailer then next", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: x\r\n\r\nGET / HTTP/1.1\r\n\r\n", []string{"", ""}},
		{"CL+TE", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", []string{errSmuggleCLTE.Error()}},
		{"differing CL", "POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 4\r\n\r\n", []string{errSmuggleCLDup.Error()}},
		{"same CL twice", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nxGET / HTTP/1.1\r\n\r\n", []string{"", ""}},
		{"signed CL", "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", []string{errBadLength.Error()}},
		{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", []string{"", errBadFraming.Error()}},
		{"CONNECT stops", "CONNECT a:1 HTTP/1.1\r\n\r\n\x16\x03\x01garbage\r\n\r\n", []string{""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []int{1, 3, len(tc.stream)} {
				f := newFraming(1 << 10)
				for i := 0; i < len(tc.stream); i += step {
					f.feed([]byte(tc.stream[i:min(i+step, len(tc.stream))]))
				}
				var got []string
				for range tc.want {
					h := f.next()
					got = append(got, errString(h.err))
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Fatalf("step %d: got %q, want %q", step, got, tc.want)
				}
				if h := f.next(); !errors.Is(h.err, errLostTrack) {
					t.Fatalf("step %d: extra head %+v", step, h)
				}
			}
		})
	}
	t.Run("host headers recorded", func(t *testing.T) {
		f := newFraming(1 << 10)
		f.feed([]byte("GET " + abs + " HTTP/1.1\r\nHost: one\r\nhost: two\r\n\r\n"))
		if h := f.next(); strings.Join(h.hosts, ",") != "one,two" {
			t.Fatalf("hosts %v", h.hosts)
		}
	})
	t.Run("head too large", func(t *testing.T) {
		f := newFraming(10)
		f.feed([]byte("GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 20000)))
		if h := f.next(); !errors.Is(h.err, errHeadTooBig) {
			t.Fatalf("got %v", h.err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func FuzzFraming(f *testing.F) {
	f.Add("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 3)
	f.Add("POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 1)
	f.Add("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 7)
	f.Fuzz(func(t *testing.T, stream string, step int) {
		if step <= 0 || step > len(stream) {
			step = len(stream) + 1
		}
		whole, split := newFraming(256), newFraming(256)
		whole.feed([]byte(stream))
		for i := 0; i < len(stream); i += step {
			split.feed([]byte(stream[i:min(i+step, len(stream))]))
		}
		// How the bytes arrive never changes what is seen.
		for range maxQueued + 1 {
			a, b := whole.next(), split.next()
			if errString(a.err) != errString(b.err) || strings.Join(a.hosts, "\n") != strings.Join(b.hosts, "\n") {
				t.Fatalf("whole %+v, split by %d %+v", a, step, b)
			}
			if errors.Is(a.err, errLostTrack) {
				return
			}
		}
		t.Fatal("more heads than the queue bound: " + strconv.Itoa(maxQueued))
	})
}
