package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/regate/regate/engine"
)

// Header names of a deny answer (README, Answers).
const (
	HeaderProxyError = "X-Proxy-Error"
	HeaderDecisionID = "X-Regate-Decision-Id"
	blockedByPolicy  = "blocked-by-policy"
	authRealm        = `Basic realm="regate"`
)

// denyBody states host, port and reason of a deny.
func denyBody(r Refusal) string {
	return fmt.Sprintf("regate: connection to %s blocked: %s (decision %s)\n", r.Dest, r.Decision.Reason, r.Decision.ID)
}

func denyHeader(d engine.Decision) http.Header {
	return http.Header{
		HeaderProxyError:         {blockedByPolicy},
		HeaderDecisionID:         {d.ID},
		"Content-Type":           {"text/plain; charset=utf-8"},
		"X-Content-Type-Options": {"nosniff"},
	}
}

// writeHTTPError answers with code and a plain-text message.
func writeHTTPError(w http.ResponseWriter, code int, msg string, closeConn bool) {
	if closeConn {
		w.Header().Set("Connection", "close")
	}
	http.Error(w, "regate: "+msg, code)
}

func writeAuthRequired(w http.ResponseWriter, err error) {
	w.Header().Set("Proxy-Authenticate", authRealm)
	writeHTTPError(w, http.StatusProxyAuthRequired, err.Error(), false)
}

// httpStatus answers each refusal class on the HTTP listener (plain
// requests and CONNECT).
var httpStatus = map[Class]int{
	ClassDenied:      http.StatusForbidden,
	ClassLimit:       http.StatusServiceUnavailable,
	ClassClosing:     http.StatusServiceUnavailable,
	ClassTimeout:     http.StatusGatewayTimeout,
	ClassRefused:     http.StatusBadGateway,
	ClassDNS:         http.StatusBadGateway,
	ClassUnreachable: http.StatusBadGateway,
	ClassInternal:    http.StatusBadGateway,
	ClassParent:      http.StatusBadGateway,
}

// httpAnswer is a refusal as an HTTP answer: status, status text, headers
// and body.
type httpAnswer struct {
	code   int
	text   string // the status text; CONNECT puts the reason here
	header http.Header
	body   string
}

// answerHTTP builds the HTTP answer of a refusal. Denies (the policy's and
// the proxy's own) name host, port, reason and decision id; failures name
// their cause.
func answerHTTP(r Refusal) httpAnswer {
	code := httpStatus[r.Class]
	switch r.Class {
	case ClassDenied:
		return httpAnswer{code: code, text: r.Decision.Reason, header: denyHeader(r.Decision), body: denyBody(r)}
	case ClassLimit:
		h := http.Header{HeaderDecisionID: {r.Decision.ID}, "Content-Type": {"text/plain; charset=utf-8"}}
		return httpAnswer{code: code, text: r.Decision.Reason, header: h, body: denyBody(r)}
	case ClassClosing:
		return httpAnswer{code: code, text: "shutting down", body: "regate: proxy is shutting down\n"}
	case ClassTimeout:
		msg := "upstream timed out: " + r.Err.Error()
		return httpAnswer{code: code, text: msg, body: "regate: " + msg + "\n"}
	case ClassParent: // "upstream proxy refused: 403 Forbidden"
		return httpAnswer{code: code, text: r.Err.Error(), body: "regate: " + r.Err.Error() + "\n"}
	}
	msg := "upstream failed: " + r.Err.Error()
	return httpAnswer{code: code, text: msg, body: "regate: " + msg + "\n"}
}

// send answers a plain request on the raw connection, so that the status
// line carries the reason (clients that show only the status line say
// why), and closes it; without a raw connection it answers through w.
func (a httpAnswer) send(w http.ResponseWriter) {
	c, _, err := hijack(w)
	if err != nil {
		a.write(w)
		return
	}
	defer c.Close()
	_ = writeRawResponse(c, a.code, a.text, a.header.Clone(), a.body)
}

// write answers on a ResponseWriter (a plain request).
func (a httpAnswer) write(w http.ResponseWriter) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	if a.header == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}
	w.WriteHeader(a.code)
	_, _ = io.WriteString(w, a.body)
}

// response is the answer as a synthetic response for goproxy to relay.
func (a httpAnswer) response(r *http.Request) *http.Response {
	h := a.header.Clone()
	if h == nil {
		h = http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
	}
	return &http.Response{
		StatusCode:    a.code,
		Status:        fmt.Sprintf("%d %s", a.code, http.StatusText(a.code)),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(a.body)),
		ContentLength: int64(len(a.body)),
		Request:       r,
	}
}

// writeRawResponse writes a complete HTTP/1.1 response on a hijacked
// connection; text is the status text (CONNECT denies carry the reason).
func writeRawResponse(c net.Conn, code int, text string, h http.Header, body string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", code, statusText(text))
	if h == nil {
		h = http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.WriteString(body)
	_, err := c.Write(b.Bytes())
	return err
}

// statusText makes text safe for a status line: printable ASCII, bounded.
func statusText(text string) string {
	out := make([]byte, 0, len(text))
	for i := 0; i < len(text) && len(out) < 200; i++ {
		if c := text[i]; c >= 0x20 && c < 0x7f {
			out = append(out, c)
		}
	}
	return string(out)
}
