package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// simplePolicy is a small stand-in for the embedded default, so that engine
// tests do not depend on the default policy's details.
const simplePolicy = `package regate.network

default decision := {"allow": false, "reason": "no rule allows", "rule": "default"}

decision := {"allow": true, "reason": "allowed", "rule": "allow"} if {
	data.regate.allow[input.host]
}
`

func simpleFS(policy string) fstest.MapFS {
	return fstest.MapFS{"network.rego": {Data: []byte(policy)}}
}

// syncBuffer is a bytes.Buffer safe for the decision-log worker and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	return e
}

func TestDecideAllowAndDeny(t *testing.T) {
	var log syncBuffer
	e := startEngine(t, Config{Default: simpleFS(simplePolicy), Allow: []string{"github.com"}, DecisionLog: &log})
	tests := []struct {
		name  string
		host  string
		allow bool
	}{
		{"listed host", "github.com", true},
		{"unlisted host", "evil.test", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), Input{Host: tc.host, Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect})
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Allow != tc.allow || d.ID == "" {
				t.Fatalf("decision = %+v, want allow=%v with an id", d, tc.allow)
			}
		})
	}
	e.Flush(context.Background())
	lines := bytes.Split(bytes.TrimSpace([]byte(log.String())), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("decision log has %d lines, want 2:\n%s", len(lines), log.String())
	}
	var ev map[string]any
	if err := json.Unmarshal(lines[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev["path"] != DecisionPath || ev["decision_id"] == "" {
		t.Fatalf("event = %v", ev)
	}
}
