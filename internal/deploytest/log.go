package deploytest

import "github.com/privstats/privstats/internal/logbuf"

// Log is a log sink that components write to while a test reads it, for
// the Logger option: slog.New(slog.NewTextHandler(&log, nil)).
type Log = logbuf.Buffer
