package agent

import (
	"bytes"
	"context"
	"log/slog"
)

// logWriter turns serf's and memberlist's "[LEVEL] text" lines into slog
// records, so one --log-level and --log-json governs every line.
type logWriter struct {
	log *slog.Logger
	// nameConflict, if set, is called with the other node's address when
	// serf logs that another node claims this peer's name: serf reports
	// that only in its log. It is called with memberlist's locks held, so
	// it must not call into serf or memberlist.
	nameConflict func(other string)
}

// serfNameConflict starts serf's log line (v0.11) for another node that
// claims this peer's name; the address and ". Names must be unique!" follow.
const serfNameConflict = "serf: Node name conflicts with another node at "

func (w *logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{
		{"[TRACE]", slog.LevelDebug - 4}, {"[DEBUG]", slog.LevelDebug},
		{"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
	} {
		if i := bytes.Index(line, []byte(l.tag)); i >= 0 {
			level = l.level
			line = bytes.TrimSpace(line[i+len(l.tag):])
			break
		}
	}
	w.log.Log(context.Background(), level, string(line), "from", "gossip")
	if w.nameConflict != nil {
		if rest, ok := bytes.CutPrefix(line, []byte(serfNameConflict)); ok {
			other, _, _ := bytes.Cut(rest, []byte(". "))
			w.nameConflict(string(other))
		}
	}
	return len(p), nil
}
