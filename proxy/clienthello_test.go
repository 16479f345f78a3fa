package proxy

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"
)

// realClientHello returns the first flight crypto/tls sends for serverName.
func realClientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		tc := tls.Client(client, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		_ = tc.Handshake()
		client.Close()
	}()
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := server.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// buildHello builds a minimal ClientHello record with the given
// server_name extensions (each a list of host names).
func buildHello(exts ...[]string) []byte {
	var body []byte
	body = append(body, 3, 3)
	body = append(body, make([]byte, 32)...)
	body = append(body, 0)                // session id
	body = append(body, 0, 2, 0x13, 0x01) // one cipher suite
	body = append(body, 1, 0)             // null compression
	var ext []byte
	for _, names := range exts {
		var list []byte
		for _, n := range names {
			list = append(list, serverNameHostName)
			list = binary.BigEndian.AppendUint16(list, uint16(len(n)))
			list = append(list, n...)
		}
		data := binary.BigEndian.AppendUint16(nil, uint16(len(list)))
		data = append(data, list...)
		ext = binary.BigEndian.AppendUint16(ext, extensionServerName)
		ext = binary.BigEndian.AppendUint16(ext, uint16(len(data)))
		ext = append(ext, data...)
	}
	body = binary.BigEndian.AppendUint16(body, uint16(len(ext)))
	body = append(body, ext...)
	msg := []byte{handshakeClientHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	return records(append(msg, body...), 16384)
}

// records wraps a handshake message in records of at most size bytes.
func records(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// unrecord extracts the handshake bytes from records (test helper).
func unrecord(b []byte) []byte {
	var msg []byte
	for len(b) >= 5 {
		n := int(b[3])<<8 | int(b[4])
		if len(b) < 5+n {
			break
		}
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
	}
	return msg
}

func TestClientHelloSNI(t *testing.T) {
	real := realClientHello(t, "www.example.com")
	tests := []struct {
		name    string
		in      []byte
		want    string
		wantErr error
	}{
		{"crypto/tls hello", real, "www.example.com", nil},
		{"crypto/tls hello in 7-byte records", records(unrecord(real), 7), "www.example.com", nil},
		{"crypto/tls hello without SNI", realClientHello(t, "192.0.2.1"), "", nil},
		{"built hello", buildHello([]string{"a.test"}), "a.test", nil},
		{"no extensions", buildHello(), "", nil},
		{"duplicate extension", buildHello([]string{"a.test"}, []string{"b.test"}), "", errMalformedHello},
		{"two host names", buildHello([]string{"a.test", "b.test"}), "", errMalformedHello},
		{"empty host name", buildHello([]string{""}), "", errMalformedHello},
		{"truncated", real[:len(real)-10], "", errNeedMore},
		{"header only", real[:5], "", errNeedMore},
		{"application data record", append([]byte{0x17}, real[1:]...), "", errMalformedHello},
		{"server hello type", records([]byte{2, 0, 0, 1, 0}, 100), "", errMalformedHello},
		{"zero-length record", []byte{0x16, 3, 1, 0, 0}, "", errMalformedHello},
		{"huge message", records([]byte{1, 0xff, 0xff, 0xff}, 100), "", errMalformedHello},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := clientHelloSNI(tc.in)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("sni %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClientHelloEveryPrefixNeedsMore(t *testing.T) {
	real := records(unrecord(realClientHello(t, "prefix.test")), 50)
	for i := range len(real) {
		if _, err := clientHelloSNI(real[:i]); !errors.Is(err, errNeedMore) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
}

func FuzzClientHelloSNI(f *testing.F) {
	f.Add(realClientHello(f, "seed.example"))
	f.Add(buildHello([]string{"a.test"}))
	f.Add(buildHello([]string{"a.test"}, []string{"b.test"}))
	f.Add(records(unrecord(buildHello([]string{"split.test"})), 3))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		sni, err := clientHelloSNI(b)
		if err != nil && sni != "" {
			t.Fatalf("sni %q with error %v", sni, err)
		}
		if err != nil {
			return
		}
		// The same handshake in other record sizes gives the same name.
		msg, _ := handshakeMessage(b)
		framed := append([]byte{handshakeClientHello, byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}, msg...)
		again, err := clientHelloSNI(records(framed, 5))
		if err != nil || again != sni {
			t.Fatalf("re-recorded: %q %v, want %q", again, err, sni)
		}
	})
}
