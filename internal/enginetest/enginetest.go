// Package enginetest starts a real policy engine for the tests of the
// packages that consume one (proxy, admin).
package enginetest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/regate/regate/engine"
)

// Start builds and starts an engine from cfg, failing the test on any
// error, and stops it when the test ends.
func Start(t testing.TB, cfg engine.Config) *engine.Engine {
	t.Helper()
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	return e
}

// SyncBuffer is a bytes.Buffer that another goroutine (an engine's
// decision-log worker, a process's output) writes while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes is a copy of what was written so far.
func (b *SyncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// String is what was written so far.
func (b *SyncBuffer) String() string { return string(b.Bytes()) }
