package middleware

import (
	"fmt"
	"unicode/utf8"
)

// Operations of the failure path, as [FailurePathError.Op] names them.
const (
	OpDeadLetter   = "dead-letter publish"
	OpDelayedRetry = "delayed-retry hand-back"
	OpRequeue      = "idempotency requeue"
)

// FailurePathError reports that the failure path itself failed: a dead
// letter or a delayed retry could not be published (the broker refused, or
// its deadline passed). The message was neither given up on nor handed
// back, so the runtime nacks it and the broker redelivers it; it is never
// dead-lettered for this, and never dropped.
type FailurePathError struct {
	// Op is what failed: [OpDeadLetter], [OpDelayedRetry] or [OpRequeue].
	Op string
	// Topic is where the publish went, if known.
	Topic string
	// Err is the publish error.
	Err error
	// Cause is the handler's error that sent the message down the failure
	// path.
	Cause error
}

func (e *FailurePathError) Error() string {
	where := ""
	if e.Topic != "" {
		where = fmt.Sprintf(" to %q", e.Topic)
	}
	return fmt.Sprintf("%s%s failed: %v (handler error: %v)", e.Op, where, e.Err, e.Cause)
}

// Unwrap returns the publish error only: the handler's error is not what
// ended this delivery, so classifiers (permanent, reason) must not see it.
func (e *FailurePathError) Unwrap() error { return e.Err }

// MaxErrorText is the most bytes of error text a dead letter carries in
// its error header; longer text (a panic's stack, a long chain) is cut and
// marked, so that a huge error cannot make the dead letter itself too large
// for the broker.
const MaxErrorText = 8 << 10

// trimText returns s cut to at most limit bytes at a character boundary,
// ending with a marker that says how much was cut.
func trimText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	marker := fmt.Sprintf("\n…[trimmed %d bytes]", len(s)-limit)
	cut := max(limit-len(marker), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}
