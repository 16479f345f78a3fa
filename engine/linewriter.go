package engine

import (
	"bytes"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// lineBufSize is the batch a burst of decisions is written in.
	lineBufSize = 64 << 10
	// writeWarnGap spaces the warnings of a failing decision log.
	writeWarnGap = 10 * time.Second
)

// lineWriter is the JSON-lines sink. Lines are buffered whole and written
// in one write per batch (a millisecond after the decision queue empties,
// or when the buffer fills). A failed write loses what it did not write of its batch, counted
// in regate_decision_log_write_dropped_total and warned about at most every
// 10 s; the next batch is tried afresh, so the log recovers when the disk
// has room again. A write cut inside a line is ended with a newline before
// the next batch: the cut line is lost, every later line is valid JSON.
type lineWriter struct {
	w       io.Writer
	buf     []byte
	lines   int  // whole lines in buf
	partial bool // w ends inside a line
	log     *slog.Logger
	errors  prometheus.Counter // failed writes
	lost    prometheus.Counter // lines not written
	now     func() time.Time

	failing          bool // since the last failed write, none succeeded
	warned           time.Time
	failedSinceWarn  int
	lostSinceWarn    int
	lostSinceFailing int
}

func newLineWriter(w io.Writer, log *slog.Logger, m *collectors) *lineWriter {
	if w == nil {
		return nil
	}
	return &lineWriter{w: w, log: log, errors: m.logErrors, lost: m.logWriteDropped, now: time.Now}
}

// add buffers one line (without its newline).
func (w *lineWriter) add(line []byte) {
	if len(w.buf) > 0 && len(w.buf)+len(line)+1 > lineBufSize {
		w.flush()
	}
	w.buf = append(w.buf, line...)
	w.buf = append(w.buf, '\n')
	w.lines++
}

// flush writes the buffered lines.
func (w *lineWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	lost, err := w.write()
	w.buf, w.lines = w.buf[:0], 0
	if err != nil {
		w.fail(err, lost)
		return
	}
	if w.failing {
		w.log.Info("decision log writes recovered", "lost_events", w.lostSinceFailing)
		w.failing, w.lostSinceFailing = false, 0
	}
}

// write writes buf, after the newline that ends a cut line, and returns
// how many of its lines were lost.
func (w *lineWriter) write() (int, error) {
	if w.partial {
		n, err := w.w.Write([]byte{'\n'})
		if n == 1 {
			w.partial = false
		}
		if err != nil {
			return w.lines, err
		}
	}
	n, err := w.w.Write(w.buf)
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		return 0, nil
	}
	written := bytes.Count(w.buf[:n], []byte{'\n'})
	switch {
	case n == 0 || w.buf[n-1] == '\n': // cut between lines
	case w.buf[n] == '\n': // only the newline is missing: the line is whole
		written++
		w.partial = true
	default:
		w.partial = true
	}
	return w.lines - written, err
}

// fail counts a failed write and warns, at most every writeWarnGap.
func (w *lineWriter) fail(err error, lost int) {
	w.errors.Inc()
	w.lost.Add(float64(lost))
	w.failing = true
	w.failedSinceWarn++
	w.lostSinceWarn += lost
	w.lostSinceFailing += lost
	if now := w.now(); w.warned.IsZero() || now.Sub(w.warned) >= writeWarnGap {
		w.log.Warn("writing the decision log failed; its events are lost until a write succeeds",
			"error", err, "failed_writes", w.failedSinceWarn, "lost_events", w.lostSinceWarn)
		w.warned, w.failedSinceWarn, w.lostSinceWarn = now, 0, 0
	}
}
