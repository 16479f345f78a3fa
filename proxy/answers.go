package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Header names of a deny answer (DESIGN §4).
const (
	HeaderProxyError = "X-Proxy-Error"
	HeaderDecisionID = "X-Regate-Decision-Id"
	blockedByPolicy  = "blocked-by-policy"
	authRealm        = `Basic realm="regate"`
)

// denyBody states host, port and reason of a deny.
func denyBody(f *flow) string {
	return fmt.Sprintf("regate: connection to %s blocked: %s (decision %s)\n",
		target{host: f.in.Host, port: f.in.Port}, f.dec.Reason, f.dec.ID)
}

func denyHeader(f *flow) http.Header {
	return http.Header{
		HeaderProxyError:         {blockedByPolicy},
		HeaderDecisionID:         {f.dec.ID},
		"Content-Type":           {"text/plain; charset=utf-8"},
		"X-Content-Type-Options": {"nosniff"},
	}
}

// writeDenied answers a denied plain request with 403.
func writeDenied(w http.ResponseWriter, f *flow) {
	for k, v := range denyHeader(f) {
		w.Header()[k] = v
	}
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, denyBody(f))
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

// upstreamStatus maps a guard or dial failure to an HTTP status: 403 for
// the SSRF guard, 504 for a timeout, 502 otherwise (with the cause).
func upstreamStatus(f *flow, err error) (int, string) {
	var se *ssrfError
	var de *dialError
	switch {
	case errors.As(err, &se):
		return http.StatusForbidden, denyBody(f)
	case errors.As(err, &de) && de.class == dialTimeout:
		return http.StatusGatewayTimeout, "upstream timed out: " + err.Error()
	}
	return http.StatusBadGateway, "upstream failed: " + err.Error()
}

// errorResponse is a synthetic answer for goproxy to relay.
func errorResponse(r *http.Request, code int, msg string) *http.Response {
	body := "regate: " + msg + "\n"
	return &http.Response{
		StatusCode:    code,
		Status:        fmt.Sprintf("%d %s", code, http.StatusText(code)),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
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
