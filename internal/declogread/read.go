package declogread

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"

	"github.com/regate/regate/engine"
)

// MaxBytes bounds what is read of one source, after decompression.
const MaxBytes = 1 << 30

// Problem is a part of a source that could not be read as an event; it was
// skipped.
type Problem struct {
	Source string // "d.jsonl:3"
	Err    error
}

func (p Problem) Error() string { return p.Source + ": " + p.Err.Error() }

// Read reads every event of r, named name in Sources and problems. The
// format is recognised from the content: gzip is decompressed (several
// members, as concatenated batches, too); a document that starts with "["
// is a sequence of JSON arrays of events (OPA's upload batches); otherwise
// each line is an event, an array of events, or an admin API answer
// ({"result": [events]}), and a pretty-printed document is read as a whole.
//
// A line or array element that is not an event is a Problem, skipped; the
// error is for a source that cannot be read at all.
func Read(r io.Reader, name string) ([]Event, []Problem, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", name, err)
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	}
	var buf bytes.Buffer
	if n := sizeHint(r); n > 0 && n < MaxBytes {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(br, MaxBytes+1)); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", name, err)
	}
	data := buf.Bytes()
	if len(data) > MaxBytes {
		return nil, nil, fmt.Errorf("reading %s: more than %d bytes", name, MaxBytes)
	}
	rd := &reader{name: name}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0:
	case trimmed[0] == '[' || prettyObject(data):
		rd.values(data)
	default:
		rd.lines(data)
	}
	return rd.events, rd.problems, nil
}

// sizeHint is how many bytes r holds, when it can tell (a file, a
// buffer), so that the whole of it is read into one allocation.
func sizeHint(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	case interface{ Len() int }:
		return int64(v.Len())
	}
	return 0
}

// prettyObject reports whether data's first non-blank line opens a JSON
// object that continues on the next lines (an indented document).
func prettyObject(data []byte) bool {
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		if t := bytes.TrimSpace(line); len(t) > 0 {
			return bytes.Equal(t, []byte("{"))
		}
		data = rest
	}
	return false
}

type reader struct {
	name     string
	events   []Event
	problems []Problem
}

func (rd *reader) problem(src string, err error) {
	rd.problems = append(rd.problems, Problem{Source: src, Err: err})
}

// lines reads JSON lines: a bad line is a problem and the next is read.
func (rd *reader) lines(data []byte) {
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		rd.value(line, rd.name+":"+strconv.Itoa(n))
	}
}

// values reads a sequence of JSON values (batches, a pretty-printed
// answer); a syntax error ends the source, since nothing after it can be
// placed.
func (rd *reader) values(data []byte) {
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		start := dec.InputOffset()
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			at := start
			var se *json.SyntaxError
			if errors.As(err, &se) {
				at = se.Offset
			}
			rd.problem(rd.name+":"+strconv.Itoa(lineAt(data, at)), fmt.Errorf("%w; the rest of the source is skipped", err))
			return
		}
		rd.value(raw, rd.name+":"+strconv.Itoa(lineAt(data, start+int64(leadingSpace(data[start:])))))
	}
}

func leadingSpace(b []byte) int { return len(b) - len(bytes.TrimLeft(b, " \t\r\n")) }

// lineAt is the 1-based line of offset in data.
func lineAt(data []byte, offset int64) int {
	offset = min(max(offset, 0), int64(len(data)))
	return 1 + bytes.Count(data[:offset], []byte("\n"))
}

// value reads one JSON value: an array of events, an admin answer or an
// event.
func (rd *reader) value(raw []byte, src string) {
	switch bytes.TrimSpace(raw)[0] {
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			rd.problem(src, err)
			return
		}
		rd.batch(elems, src)
	case '{':
		rd.event(raw, src, true)
	default:
		rd.problem(src, errors.New("not a decision-log event (want a JSON object or array)"))
	}
}

func (rd *reader) batch(elems []json.RawMessage, src string) {
	for i, e := range elems {
		rd.event(e, src+"["+strconv.Itoa(i)+"]", false)
	}
}

// wireEvent is the part of OPA's EventV1 that is read back.
type wireEvent struct {
	DecisionID *string           `json:"decision_id"`
	Path       string            `json:"path"`
	Timestamp  time.Time         `json:"timestamp"`
	Labels     map[string]string `json:"labels"`
	Input      json.RawMessage   `json:"input"`
	Result     json.RawMessage   `json:"result"`
	Erased     []string          `json:"erased"`
	Masked     []string          `json:"masked"`
}

// event reads one event, or (answer) the admin API's {"result": [events]}.
func (rd *reader) event(raw []byte, src string, answer bool) {
	var w wireEvent
	if err := json.Unmarshal(raw, &w); err != nil {
		rd.problem(src, fmt.Errorf("not a decision-log event: %w", err))
		return
	}
	if w.DecisionID == nil || *w.DecisionID == "" {
		if answer && bytes.HasPrefix(bytes.TrimSpace(w.Result), []byte("[")) {
			rd.value(w.Result, src)
			return
		}
		rd.problem(src, errors.New("not a decision-log event: no decision_id"))
		return
	}
	ev := Event{
		Source: src, DecisionID: *w.DecisionID, Path: w.Path, Timestamp: w.Timestamp,
		Labels: w.Labels, Erased: w.Erased, Masked: w.Masked, Result: readResult(w.Result),
	}
	if len(w.Input) > 0 && !bytes.Equal(w.Input, []byte("null")) {
		ev.Input = w.Input
	}
	rd.events = append(rd.events, ev)
}

// readResult reads a logged result as the engine reads the policy's answer
// (engine/decision.go, fromResult): anything but an object with a boolean
// allow was a fail-closed deny. An audited deny is logged with allow false
// (the policy's answer) or true (what was enforced) and audit true.
func readResult(raw json.RawMessage) Result {
	var obj map[string]any
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return Result{Reason: engine.ReasonUndefined, Rule: engine.ReasonRuleEngine}
	}
	allow, ok := obj["allow"].(bool)
	if !ok {
		return Result{Reason: engine.ReasonNoAllow, Rule: engine.ReasonRuleEngine}
	}
	r := Result{Allow: allow}
	r.Reason, _ = obj["reason"].(string)
	r.Rule, _ = obj["rule"].(string)
	r.Audit, _ = obj["audit"].(bool)
	if r.Audit {
		r.Allow = true
	}
	return r
}
