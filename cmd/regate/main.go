// Command regate runs programs behind a policy-deciding proxy: every
// connection they make goes through a local HTTP/SOCKS5 proxy whose embedded
// OPA decides it from Rego.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/regate/regate/internal/isolate"
)

func main() {
	if len(os.Args) > 1 { // the stages of --isolate: before anything else runs
		switch os.Args[1] {
		case isolate.InitArg:
			os.Exit(isolate.Init(os.Stderr))
		case isolate.ExecArg:
			os.Exit(isolate.Exec(os.Args[2:], os.Stderr))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	notifySIGPIPE()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
