package secrets

import (
	"bytes"
	"io"
	"sync"
)

// ScrubBody wraps a response body so that every real value in it reads
// as its placeholder, in the forms ScrubString knows. A placeholder has its value's length, so lengths
// (Content-Length) hold; the last bytes that could begin a value — only
// those, so a streamed answer (server-sent events) is not delayed — are
// held back until the next read decides.
func (s *Set) ScrubBody(rc io.ReadCloser) io.ReadCloser {
	if s == nil || len(s.secrets) == 0 || rc == nil {
		return rc
	}
	return &scrubBody{rc: rc, set: s}
}

type scrubBody struct {
	rc   io.ReadCloser
	set  *Set
	buf  []byte // read, scrubbed, not yet returned (in back)
	held int    // the tail of buf that could still begin a value
	err  error
	back []byte // buf's storage: one read plus what was held
}

// scrubRead is how much a scrubBody reads at once.
const scrubRead = 32 << 10

func (b *scrubBody) Read(p []byte) (int, error) {
	for len(b.buf)-b.held == 0 {
		if b.err != nil {
			if len(b.buf) == 0 {
				b.release()
				return 0, b.err
			}
			b.held = 0 // the end: nothing more can complete a value
			break
		}
		if b.back == nil {
			b.back = (*scrubBufs.Get().(*[]byte))[:0]
		}
		// Only the held bytes are left: they move to the front, and the
		// read lands after them.
		kept := copy(b.back[:cap(b.back)], b.buf)
		n, err := b.rc.Read(b.back[kept : kept+scrubRead])
		b.buf, b.err = b.back[:kept+n], err
		for _, sec := range b.set.secrets {
			for _, f := range sec.forms {
				replaceSameLength(b.buf, f.bytes, f.placeholder)
			}
		}
		b.held = b.tail()
	}
	n := copy(p, b.buf[:len(b.buf)-b.held])
	b.buf = b.buf[n:]
	return n, nil
}

// Close closes the body. Its buffer is not given back here: Close may
// come while a Read is under way on another goroutine (a client gone);
// the garbage collector takes it then.
func (b *scrubBody) Close() error { return b.rc.Close() }

// release gives the buffer back to the pool once nothing is left in it to
// return: only Read calls it, at the end of the body.
func (b *scrubBody) release() {
	if b.back != nil {
		back := b.back[:cap(b.back)]
		scrubBufs.Put(&back)
		b.back, b.buf = nil, nil
	}
}

// scrubBufs are the scrubBodies' buffers: a response of a bound host
// takes one only while it is read, not for each request (64 KiB each).
var scrubBufs = sync.Pool{New: func() any { b := make([]byte, scrubRead+maxValue*2); return &b }}

// tail is how many of buf's last bytes could begin a value: the longest
// suffix that is a proper prefix of one of its forms.
func (b *scrubBody) tail() int {
	held := 0
	for _, sec := range b.set.secrets {
		for _, f := range sec.forms {
			// A suffix of buf that begins a form starts with its first
			// byte: only those places are tried.
			from := max(len(b.buf)-len(f.value)+1, 0)
			for i := from; i < len(b.buf)-held; i++ {
				if b.buf[i] == f.value[0] && string(b.buf[i:]) == f.value[:len(b.buf)-i] {
					held = len(b.buf) - i
					break
				}
			}
		}
	}
	return held
}

// replaceSameLength replaces old by new (of the same length) in place.
func replaceSameLength(buf, old []byte, new string) {
	for i := 0; ; {
		j := bytes.Index(buf[i:], old)
		if j < 0 {
			return
		}
		copy(buf[i+j:], new)
		i += j + len(old)
	}
}
