//go:build !linux

package isolate

import (
	"io"
	"net"
	"os"
)

// Sandbox is not available off Linux.
type Sandbox struct{}

// Stdio are the command's standard streams.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Start fails off Linux.
func Start(Spec, Stdio) (*Sandbox, error) { return nil, Available() }

// Link is nil off Linux.
func (*Sandbox) Link() *Link { return nil }

// LinkError is empty off Linux.
func (*Sandbox) LinkError() string { return "" }

// Listeners is nil off Linux.
func (*Sandbox) Listeners() []net.Listener { return nil }

// Run fails off Linux.
func (*Sandbox) Run(string, []string, []string) error { return Available() }

// Process is nil off Linux.
func (*Sandbox) Process() *os.Process { return nil }

// Wait fails off Linux.
func (*Sandbox) Wait() (*os.ProcessState, error) { return nil, Available() }

// Close does nothing off Linux.
func (*Sandbox) Close() {}

// Init is never run off Linux.
func Init(io.Writer) int { return 125 }

// Exec is never run off Linux.
func Exec([]string, io.Writer) int { return 125 }
