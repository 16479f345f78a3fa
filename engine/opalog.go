package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/open-policy-agent/opa/v1/logging"
)

// opaLogger adapts slog to OPA's logging.Logger, so OPA's plugins (bundle
// downloads, decision-log upload, status) log through regate's logger.
type opaLogger struct{ l *slog.Logger }

func (o opaLogger) Debug(f string, a ...any) { o.l.Debug(fmt.Sprintf(f, a...)) }

// Info is debug for regate: OPA's info lines ("Starting decision logger")
// are noise beside regate's own; reloads and their errors are logged by the
// engine.
func (o opaLogger) Info(f string, a ...any)  { o.l.Debug(fmt.Sprintf(f, a...)) }
func (o opaLogger) Warn(f string, a ...any)  { o.l.Warn(fmt.Sprintf(f, a...)) }
func (o opaLogger) Error(f string, a ...any) { o.l.Error(fmt.Sprintf(f, a...)) }

func (o opaLogger) WithFields(fields map[string]any) logging.Logger {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return opaLogger{o.l.With(args...)}
}

func (o opaLogger) GetLevel() logging.Level {
	ctx := context.Background()
	switch {
	case o.l.Enabled(ctx, slog.LevelDebug):
		return logging.Debug
	case o.l.Enabled(ctx, slog.LevelInfo):
		return logging.Info
	case o.l.Enabled(ctx, slog.LevelWarn):
		return logging.Warn
	default:
		return logging.Error
	}
}

// SetLevel is a no-op: the slog handler owns the level.
func (o opaLogger) SetLevel(logging.Level) {}
