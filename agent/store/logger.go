package store

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleLogger passes pebble's messages to a slog.Logger.
type pebbleLogger struct {
	log *slog.Logger
	dir string
}

var _ pebble.Logger = pebbleLogger{}

// Infof implements pebble.Logger; pebble's informational lines go out at Debug.
func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...), "dir", l.dir)
	}
}

// Errorf implements pebble.Logger.
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "dir", l.dir)
}

// Fatalf implements pebble.Logger. Pebble calls it when it cannot go on safely, most notably
// when a WAL write or fsync fails: it must not return then, or pebble would report the commit
// as done. Like pebble's own default logger it exits the process, after logging at Error:
// once an fsync has failed, the only honest course is to restart and recover from what is on
// disk.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("store: fatal pebble error, exiting: "+msg, "dir", l.dir)
	fmt.Fprintf(os.Stderr, "store: fatal pebble error in %s, exiting: %s\n", l.dir, msg)
	os.Exit(70)
}
