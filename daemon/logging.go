package daemon

import (
	"io"
	"log/slog"

	"github.com/postalgo/postal/config"
)

// newLogger builds the process logger from the logging section: JSON unless
// the format is text (or auto on a terminal); nothing when disabled.
func newLogger(c config.Logging, w io.Writer, terminal bool) *slog.Logger {
	if !c.Enabled {
		return slog.New(slog.DiscardHandler)
	}
	var level slog.Level
	switch c.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	ho := &slog.HandlerOptions{Level: level}
	if c.Format == "text" || (c.Format == "auto" && terminal) {
		return slog.New(slog.NewTextHandler(w, ho))
	}
	return slog.New(slog.NewJSONHandler(w, ho))
}
