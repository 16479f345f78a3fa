package proxy

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
)

// framing reads a client's raw HTTP/1 byte stream alongside net/http, which
// hides what smuggling checks need: it drops Content-Length when chunked
// Transfer-Encoding is present, and removes the Host header of an
// absolute-form request. framing records each request head (Host values,
// framing errors) in order; the handler of the n-th request takes the n-th
// record. On anything it cannot follow it records an error and stops, so the
// next request is refused: it fails closed.
type framing struct {
	mu      sync.Mutex
	maxHead int
	state   frameState
	line    []byte
	size    int   // bytes of the current head or chunk line
	left    int64 // body or chunk bytes still to skip
	cur     headInfo
	inHead  bool
	queue   []headInfo
	stopped bool
}

// headInfo is what framing saw of one request head.
type headInfo struct {
	connect bool
	hosts   []string
	lengths []string
	codings []string
	err     error
}

type frameState int

const (
	stHead frameState = iota
	stBody
	stChunkSize
	stChunkData
	stChunkEnd
	stTrailer
)

const (
	maxChunkLine = 4096
	maxQueued    = 256
)

var (
	errSmuggleCLTE  = errors.New("request has both Content-Length and Transfer-Encoding")
	errSmuggleCLDup = errors.New("request has differing Content-Length values")
	errBadLength    = errors.New("request has an invalid Content-Length")
	errBadCoding    = errors.New("request has a Transfer-Encoding other than chunked")
	errObsFold      = errors.New("request has a folded header line")
	errBadFraming   = errors.New("request body framing is invalid")
	errHeadTooBig   = errors.New("request head too large")
	errLostTrack    = errors.New("request framing could not be followed")
)

func newFraming(maxHeaderBytes int) *framing {
	// net/http allows MaxHeaderBytes plus 4096; stay above it so that
	// net/http answers 431 first.
	return &framing{maxHead: maxHeaderBytes + 8192}
}

// next returns the record of the next request head.
func (f *framing) next() headInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return headInfo{err: errLostTrack}
	}
	h := f.queue[0]
	f.queue = f.queue[1:]
	return h
}

// feed consumes bytes as net/http reads them.
func (f *framing) feed(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(b) > 0 && !f.stopped {
		switch f.state {
		case stBody, stChunkData:
			n := int64(len(b))
			if n > f.left {
				n = f.left
			}
			b, f.left = b[n:], f.left-n
			if f.left == 0 && f.state == stBody {
				f.state = stHead
			} else if f.left == 0 {
				f.state = stChunkEnd
			}
		default:
			b = f.feedLine(b)
		}
	}
}

// feedLine accumulates one line and handles it when complete. A line
// that arrives whole is handled where it lies, without a copy.
func (f *framing) feedLine(b []byte) []byte {
	i := bytes.IndexByte(b, '\n')
	chunk := b
	if i >= 0 {
		chunk = b[:i+1]
	}
	f.size += len(chunk)
	limit := maxChunkLine
	if f.state == stHead || f.state == stTrailer {
		limit = f.maxHead
	}
	if f.size > limit {
		f.fail(errHeadTooBig)
		return nil
	}
	if i < 0 {
		f.line = append(f.line, chunk...)
		return nil
	}
	line := chunk
	if len(f.line) > 0 {
		f.line = append(f.line, chunk...)
		line = f.line
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	f.onLine(line) // keeps nothing of line but copies
	f.line = f.line[:0]
	return b[i+1:]
}

func (f *framing) onLine(line []byte) {
	switch f.state {
	case stHead:
		f.headLine(line)
	case stChunkSize:
		f.size = 0
		f.chunkSize(string(line))
	case stChunkEnd:
		f.size = 0
		if len(line) != 0 {
			f.fail(errBadFraming)
			return
		}
		f.state = stChunkSize
	case stTrailer:
		if len(line) == 0 {
			f.size, f.state = 0, stHead
		}
	}
}

func (f *framing) headLine(line []byte) {
	if !f.inHead {
		if len(line) == 0 {
			f.size = 0 // a blank line before a request line is tolerated
			return
		}
		f.inHead = true
		f.cur = headInfo{connect: bytes.HasPrefix(line, []byte("CONNECT "))}
		return
	}
	if len(line) == 0 {
		f.endHead()
		return
	}
	if line[0] == ' ' || line[0] == '\t' {
		f.cur.setErr(errObsFold)
		return
	}
	name, value, _ := bytes.Cut(line, []byte(":"))
	switch {
	case asciiEqualFold(name, "host"):
		f.cur.hosts = append(f.cur.hosts, string(bytes.TrimSpace(value)))
	case asciiEqualFold(name, "content-length"):
		f.cur.lengths = append(f.cur.lengths, string(bytes.TrimSpace(value)))
	case asciiEqualFold(name, "transfer-encoding"):
		f.cur.codings = append(f.cur.codings, string(bytes.TrimSpace(value)))
	}
}

// asciiEqualFold reports whether b is lower, ASCII letters in any case
// (no other spelling of these header names lower-cases to them).
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// endHead queues the finished head and follows its body.
func (f *framing) endHead() {
	h := f.cur
	f.cur, f.inHead, f.size = headInfo{}, false, 0
	state, left, err := h.bodyFraming()
	h.setErr(err)
	f.push(h)
	if h.connect || h.err != nil {
		f.stopped = true // a tunnel follows, or the stream cannot be followed
		return
	}
	f.state, f.left = state, left
}

func (f *framing) chunkSize(line string) {
	size, _, _ := strings.Cut(line, ";")
	size = strings.TrimRight(size, " \t")
	n, err := strconv.ParseUint(size, 16, 62)
	if err != nil {
		f.fail(errBadFraming)
		return
	}
	if n == 0 {
		f.state = stTrailer
		return
	}
	f.state, f.left = stChunkData, int64(n)
}

func (f *framing) push(h headInfo) {
	if len(f.queue) >= maxQueued {
		h = headInfo{err: errLostTrack}
		f.stopped = true
	}
	f.queue = append(f.queue, h)
}

// fail queues err for the request being read (or the next one) and stops.
func (f *framing) fail(err error) {
	f.push(headInfo{err: err})
	f.stopped = true
}

func (h *headInfo) setErr(err error) {
	if h.err == nil {
		h.err = err
	}
}

// bodyFraming returns how the body after h is framed.
func (h headInfo) bodyFraming() (frameState, int64, error) {
	if len(h.codings) > 0 {
		if len(h.lengths) > 0 {
			return 0, 0, errSmuggleCLTE
		}
		if len(h.codings) != 1 || !strings.EqualFold(h.codings[0], "chunked") {
			return 0, 0, errBadCoding
		}
		return stChunkSize, 0, nil
	}
	if len(h.lengths) == 0 {
		return stHead, 0, nil
	}
	for _, v := range h.lengths[1:] {
		if v != h.lengths[0] {
			return 0, 0, errSmuggleCLDup
		}
	}
	v := h.lengths[0]
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || v == "" || v[0] < '0' || v[0] > '9' {
		return 0, 0, errBadLength
	}
	if n == 0 {
		return stHead, 0, nil
	}
	return stBody, n, nil
}
