package secrets

import (
	"bytes"
	"io"
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
				return 0, b.err
			}
			b.held = 0 // the end: nothing more can complete a value
			break
		}
		if b.back == nil {
			b.back = make([]byte, 0, scrubRead+maxValue*2)
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

func (b *scrubBody) Close() error { return b.rc.Close() }

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
