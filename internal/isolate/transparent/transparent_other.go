//go:build !linux

package transparent

import (
	"context"
	"errors"
	"log/slog"

	"github.com/regate/regate/internal/isolate"
	"github.com/regate/regate/proxy"
)

// Start fails off Linux.
func Start(context.Context, *isolate.Link, *proxy.Proxy, *slog.Logger, Options) (func(), error) {
	return nil, errors.New("transparent isolation needs Linux")
}
