package engine

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/logging"
)

// consoleLogger is OPA's console logger: decision_logs.console and
// status.console print through it, one JSON object a line at info level
// with the event's fields at the top, as `opa run` prints them (logrus's
// JSON formatter: level, msg, time; a field that collides with one of
// those is renamed fields.NAME). It is independent of regate's log level,
// as OPA's console logger is of --log-level. nil w discards.
func consoleLogger(w io.Writer) logging.Logger {
	if w == nil {
		return logging.NewNoOpLogger()
	}
	return &jsonConsole{out: &lockedWriter{w: w}}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b)
}

type jsonConsole struct {
	out    *lockedWriter
	fields map[string]any
	level  *logging.Level // nil: info
}

func (c *jsonConsole) print(level logging.Level, name, f string, a ...any) {
	if level > c.GetLevel() {
		return
	}
	line := make(map[string]any, len(c.fields)+3)
	for k, v := range c.fields {
		switch k {
		case "level", "msg", "time":
			line["fields."+k] = v
		default:
			line[k] = v
		}
	}
	line["level"] = name
	line["msg"] = fmt.Sprintf(f, a...)
	line["time"] = time.Now().Format(time.RFC3339)
	b, err := json.Marshal(line)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"level": "error", "msg": "encoding console log: " + err.Error(), "time": line["time"]})
	}
	c.out.write(append(b, '\n'))
}

func (c *jsonConsole) Debug(f string, a ...any) { c.print(logging.Debug, "debug", f, a...) }
func (c *jsonConsole) Info(f string, a ...any)  { c.print(logging.Info, "info", f, a...) }
func (c *jsonConsole) Warn(f string, a ...any)  { c.print(logging.Warn, "warning", f, a...) }
func (c *jsonConsole) Error(f string, a ...any) { c.print(logging.Error, "error", f, a...) }

func (c *jsonConsole) WithFields(fields map[string]any) logging.Logger {
	cp := *c
	cp.fields = maps.Clone(c.fields)
	if cp.fields == nil {
		cp.fields = map[string]any{}
	}
	maps.Copy(cp.fields, fields)
	return &cp
}

// GetLevel is info unless set: OPA's console logger prints info.
func (c *jsonConsole) GetLevel() logging.Level {
	if c.level == nil {
		return logging.Info
	}
	return *c.level
}

func (c *jsonConsole) SetLevel(l logging.Level) { c.level = &l }
