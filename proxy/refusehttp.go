package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"
)

// AnswerPlainHTTP answers a refused connection that was accepted before
// the client sent anything (a transparent flow to an HTTP port): when the
// client's first bytes are an HTTP/1.x request, within wait and the
// header limit, it reads the request head and writes r as the HTTP
// listener would (a deny is the 403 naming host, port, reason and
// decision id), and reports true. Otherwise it writes nothing. The caller
// closes c either way.
func (p *Proxy) AnswerPlainHTTP(c net.Conn, r Refusal, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReaderSize(c, 4096)
	first, _ := br.Peek(1)
	if len(first) == 0 {
		return false
	}
	head, _ := br.Peek(br.Buffered())
	if kind, more := classifyFirst(head); kind != sniffHTTP && !more {
		return false
	}
	// A head past the header limit ends in EOF and is not answered.
	req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(br, int64(p.cfg.MaxHeaderBytes))))
	if err != nil || req.ProtoMajor != 1 {
		return false
	}
	a := answerHTTP(r)
	_ = c.SetWriteDeadline(time.Now().Add(wait))
	if err := writeRawResponse(c, a.code, a.text, a.header.Clone(), a.body); err != nil {
		return false
	}
	// The answer is not lost to a reset: the client reads it, then what
	// it still sends (a request body) is drained, boundedly.
	closeWrite(c)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, _ = io.CopyN(io.Discard, br, drainMax)
	return true
}

// drainMax bounds what is read of a refused request after its answer.
const drainMax = 256 << 10
