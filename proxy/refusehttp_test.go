package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regate/regate/engine"
)

// TestAnswerPlainHTTP: a refused connection accepted before the client
// spoke gets the HTTP listener's 403 when it sends an HTTP request, and
// nothing otherwise.
func TestAnswerPlainHTTP(t *testing.T) {
	p, err := New(testConfig(), allowHosts())
	if err != nil {
		t.Fatal(err)
	}
	deny := Refusal{Class: ClassDenied, Dest: Dest{Host: "denied.test", Port: 80},
		Decision: engine.Decision{Reason: "no rule allows denied.test", ID: "d-1"}}
	tests := []struct {
		name, send string
		answered   bool
	}{
		{name: "GET", send: "GET /x HTTP/1.1\r\nHost: denied.test\r\n\r\n", answered: true},
		{name: "POST with a body", send: "POST /x HTTP/1.1\r\nHost: denied.test\r\nContent-Length: 5\r\n\r\nhello", answered: true},
		{name: "request line in pieces", send: "GE|T / HTTP/1.0\r\n\r\n", answered: true},
		{name: "TLS", send: "\x16\x03\x01\x00\x05hello"},
		{name: "SMTP-like line", send: "EHLO x\r\n"},
		{name: "HTTP/2 preface", send: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{name: "nothing"},
		{name: "head past the limit", send: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 2<<20) + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := listen(t)
			got := make(chan bool, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- false
					return
				}
				defer c.Close()
				got <- p.AnswerPlainHTTP(c, deny, 500*time.Millisecond)
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() {
				for i, part := range strings.Split(tt.send, "|") {
					if i > 0 {
						time.Sleep(20 * time.Millisecond)
					}
					if _, err := io.WriteString(c, part); err != nil {
						return
					}
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, rerr := http.ReadResponse(bufio.NewReader(c), nil)
			if answered := <-got; answered != tt.answered {
				t.Fatalf("answered = %v, want %v", answered, tt.answered)
			}
			if !tt.answered {
				if rerr == nil {
					t.Fatalf("got a response %d, want none", resp.StatusCode)
				}
				return
			}
			if rerr != nil {
				t.Fatalf("reading the answer: %v", rerr)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get(HeaderDecisionID) != "d-1" ||
				resp.Header.Get(HeaderProxyError) != blockedByPolicy ||
				!strings.Contains(string(body), "denied.test:80 blocked: no rule allows denied.test") {
				t.Errorf("answer %s %v %q", resp.Status, resp.Header, body)
			}
		})
	}
}
