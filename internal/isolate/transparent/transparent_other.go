//go:build !linux

package transparent

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/regate/regate/proxy"
)

// Start fails off Linux.
func Start(context.Context, *os.File, *proxy.Proxy, *slog.Logger, Options) (func(), error) {
	return nil, errors.New("transparent isolation needs Linux")
}
