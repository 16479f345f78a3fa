// Command regate runs programs behind a policy-deciding proxy: every
// connection they make goes through a local HTTP/SOCKS5 proxy whose embedded
// OPA decides it from Rego.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	notifySIGPIPE()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
