package middleware

import (
	"github.com/switchyard-go/switchyard/pkg/failure"
	"log/slog"
	"time"
)

// Log attribute keys, defined once.
const (
	LogKeyCorrelationID = "correlation_id"
	LogKeyCausationID   = "causation_id"
	LogKeyMessageID     = "message_id"
	LogKeyEventType     = "event_type"
	LogKeyHandler       = "handler"
	LogKeyGroup         = "group"
	LogKeyTopic         = "topic"
	LogKeyAttempt       = "attempt"
	LogKeyWait          = "wait"
	LogKeyError         = "error"
	LogKeyReason        = "reason"
)

const slogLevelRetry = slog.LevelWarn

func attrErr(err error) slog.Attr        { return slog.String(LogKeyError, err.Error()) }
func attrAttempt(n int) slog.Attr        { return slog.Int(LogKeyAttempt, n) }
func attrWait(d time.Duration) slog.Attr { return slog.Duration(LogKeyWait, d) }

var discard = slog.New(slog.DiscardHandler)

const (
	slogLevelDeadLetter       = slog.LevelError
	slogLevelDeadLetterFailed = slog.LevelError
)

func slogReason(r failure.Reason) slog.Attr { return slog.String(LogKeyReason, string(r)) }
func slogTopic(t string) slog.Attr          { return slog.String(LogKeyTopic, t) }
