package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// outageWriter writes to a buffer, except while down: then each write
// writes cut(len) bytes of what it is given and fails with ENOSPC.
type outageWriter struct {
	mu   sync.Mutex
	b    bytes.Buffer
	down bool
	cut  func(n int) int
}

func (w *outageWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.down {
		return w.b.Write(p)
	}
	n := w.cut(len(p))
	w.b.Write(p[:n])
	return n, syscall.ENOSPC
}

func (w *outageWriter) setDown(down bool) {
	w.mu.Lock()
	w.down = down
	w.mu.Unlock()
}

func (w *outageWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// validLines are the lines of s that are JSON objects, and how many are
// not.
func validLines(s string) (valid []string, invalid int) {
	if s == "" {
		return nil, 0
	}
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil {
			valid = append(valid, line)
		} else {
			invalid++
		}
	}
	return valid, invalid
}

// TestDecisionLogSurvivesOutage: a full disk loses the events of its
// batches, and only those: the log recovers when writes succeed again,
// every line before and after is valid JSON, and the lost events are
// exactly regate_decision_log_write_dropped_total.
func TestDecisionLogSurvivesOutage(t *testing.T) {
	cuts := map[string]func(int) int{
		"nothing written": func(int) int { return 0 },
		"short writes":    func(n int) int { return n / 2 },
		"one byte":        func(int) int { return 1 },
	}
	for name, cut := range cuts {
		t.Run(name, func(t *testing.T) {
			w := &outageWriter{cut: cut}
			reg := prometheus.NewRegistry()
			var logs syncBuffer
			e := startEngine(t, Config{Default: simpleFS(simplePolicy), DecisionLog: w, Registerer: reg, DisableCache: true,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			const batches, perBatch = 6, 5
			for b := range batches {
				w.setDown(b == 2 || b == 3)
				for i := range perBatch {
					decideHost(t, e, fmt.Sprintf("h%d-%d.test", b, i))
				}
				e.Flush(context.Background())
			}
			valid, invalid := validLines(w.String())
			lost := sample(t, reg, "regate_decision_log_write_dropped_total")
			if got := float64(len(valid)) + lost; got != batches*perBatch {
				t.Errorf("%d valid lines + %v lost = %v, want %d events\n%s", len(valid), lost, got, batches*perBatch, w.String())
			}
			if lost < perBatch {
				t.Errorf("lost %v events, want at least the %d of one failed batch", lost, perBatch)
			}
			// A round of decisions may be written as several batches: each
			// failed write may leave one cut line, never more.
			if failed := sample(t, reg, "regate_decision_log_errors_total"); float64(invalid) > failed {
				t.Errorf("%d invalid lines, want at most one per failed write (%v)\n%s", invalid, failed, w.String())
			}
			for _, b := range []int{0, 1, 4, 5} {
				for i := range perBatch {
					host := fmt.Sprintf(`"host":"h%d-%d.test"`, b, i)
					if !strings.Contains(strings.Join(valid, "\n"), host) {
						t.Errorf("no valid line for %s (outside the outage)", host)
					}
				}
			}
			if n := sample(t, reg, "regate_decision_log_errors_total"); n < 2 {
				t.Errorf("regate_decision_log_errors_total = %v, want a failed write per failed batch", n)
			}
			if n := strings.Count(logs.String(), "writing the decision log failed"); n != 1 {
				t.Errorf("%d failure warnings, want 1 within 10 s:\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), "decision log writes recovered") {
				t.Errorf("no recovery logged:\n%s", logs.String())
			}
		})
	}
}

// TestLineWriterCutAnywhere: wherever a write is cut, the lines it wrote
// whole and the lines after are valid JSON, and the count of lost lines is
// exact.
func TestLineWriterCutAnywhere(t *testing.T) {
	lines := []string{`{"n":1}`, `{"n":22}`, `{"n":333}`}
	batch := strings.Join(lines, "\n") + "\n"
	for at := 0; at <= len(batch); at++ {
		w := &outageWriter{cut: func(int) int { return at }, down: true}
		m, err := newMetrics(nil)
		must(t, err)
		lw := newLineWriter(w, slog.New(slog.DiscardHandler), m)
		for _, l := range lines {
			lw.add([]byte(l))
		}
		lw.flush()
		w.setDown(false)
		lw.add([]byte(`{"n":4444}`))
		lw.flush()
		valid, _ := validLines(w.String())
		lost := counterValue(m.logWriteDropped)
		if float64(len(valid))+lost != 4 || valid[len(valid)-1] != `{"n":4444}` {
			t.Errorf("cut at %d: %d valid lines + %v lost; output %q", at, len(valid), lost, w.String())
		}
		if got := counterValue(m.logErrors); got != 1 {
			t.Errorf("cut at %d: %v errors counted, want the failed write", at, got)
		}
	}
}

// TestLineWriterWarnsEveryTenSeconds: a failing log warns once per 10 s,
// with the failures since the last warning.
func TestLineWriterWarnsEveryTenSeconds(t *testing.T) {
	w := &outageWriter{cut: func(int) int { return 0 }, down: true}
	m, err := newMetrics(nil)
	must(t, err)
	var logs bytes.Buffer
	lw := newLineWriter(w, slog.New(slog.NewTextHandler(&logs, nil)), m)
	now := time.Unix(0, 0)
	lw.now = func() time.Time { return now }
	for range 25 { // one write a second
		lw.add([]byte(`{}`))
		lw.flush()
		now = now.Add(time.Second)
	}
	if n := strings.Count(logs.String(), "writing the decision log failed"); n != 3 {
		t.Fatalf("%d warnings in 25 s, want 3:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "failed_writes=10 lost_events=10") {
		t.Fatalf("the second warning does not count the ten failures since the first:\n%s", logs.String())
	}
	if got := counterValue(m.logWriteDropped); got != 25 {
		t.Fatalf("lost %v, want 25", got)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}
