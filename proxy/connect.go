package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"

	"github.com/regate/regate/engine"
)

// serveConnect is the HTTP CONNECT source: it parses the authority-form
// target and the credentials, then hands the tunnel to the pipeline. Every
// answer but 200 closes the connection: the framing check cannot follow a
// connection past a CONNECT head.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request, head headInfo) {
	dest, err := connectTarget(r, head)
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, err.Error(), true)
		return
	}
	who, err := p.identifyHTTP(r)
	if err != nil {
		w.Header().Set("Connection", "close")
		writeAuthRequired(w, err)
		return
	}
	cc := clientConnOf(r.Context())
	if cc == nil {
		panic("CONNECT on a connection the proxy did not accept")
	}
	p.Handle(r.Context(), Conn{
		Client: cc, Dest: dest, Who: who, Listener: ListenerHTTP, Scheme: engine.SchemeHTTPS,
		Answer: &connectAnswer{w: w},
	})
}

// connectAnswer answers a CONNECT on the raw connection, so that the
// status text can carry the reason.
type connectAnswer struct {
	w http.ResponseWriter
}

func (a *connectAnswer) Refuse(r Refusal) error {
	ans := answerHTTP(r)
	c, _, err := hijack(a.w)
	if err != nil {
		a.w.Header().Set("Connection", "close")
		http.Error(a.w, ans.body, ans.code)
		return err
	}
	defer c.Close()
	return writeRawResponse(c, ans.code, ans.text, ans.header, ans.body)
}

func (a *connectAnswer) Established(net.Conn) (net.Conn, []byte, error) {
	client, buffered, err := hijack(a.w)
	if err != nil {
		return nil, nil, err
	}
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return client, nil, fmt.Errorf("answering CONNECT: %w", err)
	}
	return client, buffered, nil
}

// connectTarget is the authority-form target of a CONNECT (port required);
// a Host header, when sent, must name the same destination.
func connectTarget(r *http.Request, head headInfo) (Dest, error) {
	t, err := parseDest(r.RequestURI, 0)
	if err != nil {
		return Dest{}, err
	}
	for _, h := range head.hosts {
		ht, err := parseDest(h, t.Port)
		if err != nil || ht.Host != t.Host || ht.Port != t.Port {
			return Dest{}, fmt.Errorf("host header %q does not match the CONNECT target", h)
		}
	}
	return t, nil
}

// hijack takes the client connection over, with the bytes net/http had
// already buffered after the request head.
func hijack(w http.ResponseWriter) (net.Conn, []byte, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("hijacking: %T is no Hijacker", w)
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijacking: %w", err)
	}
	return c, drainBuffered(rw.Reader), nil
}

func drainBuffered(br *bufio.Reader) []byte {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	_, _ = br.Read(b)
	return b
}
