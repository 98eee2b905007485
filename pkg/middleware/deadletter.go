package middleware

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// DeadLetterConfig configures [DeadLetter].
type DeadLetterConfig struct {
	// Publisher publishes dead letters; its Publish must return only once the
	// broker has confirmed them.
	Publisher message.Publisher
	// Topic returns the dead-letter topic for a delivery.
	Topic func(d *Delivery) string
	// Clock stamps failure times when the failure path did not; nil means
	// the system clock.
	Clock Clock
	// OnDeadLetter, if set, is called after a dead letter was confirmed.
	OnDeadLetter func(d *Delivery, reason failure.Reason, err error)
	// Timeout bounds each dead-letter publish, under the handler's context.
	// Default [DefaultDeadLetterTimeout].
	Timeout time.Duration
	// BeforePublish, if set, runs before the dead letter is published; an
	// error fails the failure path (the message is nacked). The runtime
	// parks the message's key there for dead_letter_order: key.
	BeforePublish func(ctx context.Context, d *Delivery, reason failure.Reason) error
}

// DefaultDeadLetterTimeout bounds a dead-letter publish.
const DefaultDeadLetterTimeout = 10 * time.Second

// DeadLetter gives up on a delivery whose handler failed for good: it
// publishes a copy of the message, payload and headers unchanged, to the
// dead-letter topic with the failure metadata (reason, error chain, handler,
// group, original topic, attempts, first and last failure time), and returns
// nil once the broker confirmed it, so the original is acked.
//
// The publish carries a deadline (Timeout) under the handler's context, so
// a broker that does not answer cannot hold the consumer for ever. If it
// fails, a [*FailurePathError] is returned: the original is then nacked and
// redelivered, never lost. So is a FailurePathError from further in (a
// failed delayed-retry hand-back): it is passed through, not dead-lettered.
// An error returned once the context is done (shutdown) is passed through
// untouched for the same reason, unless it is permanent.
//
// A dead-lettered delivery is a failure to the trace: the span in ctx (see
// [Tracing]) gets an error status, the error and the reason.
func DeadLetter(cfg DeadLetterConfig) Middleware {
	clock := cfg.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultDeadLetterTimeout
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error {
			err := next(ctx, d)
			if err == nil {
				return nil
			}
			var fpe *FailurePathError
			if errors.As(err, &fpe) || errors.Is(err, ErrStopping) {
				return err // nacked and redelivered: not the handler's failure
			}
			if ctx.Err() != nil && (errors.Is(err, ctx.Err()) || !failure.IsPermanent(err)) {
				// Shutdown: redeliver, don't give up. A handler interrupted by
				// it may report its own error rather than ctx.Err(); only a
				// permanent error is final whatever the context.
				return err
			}
			reason := failure.ReasonOf(err)
			topic := cfg.Topic(d)
			if cfg.BeforePublish != nil {
				if berr := cfg.BeforePublish(ctx, d, reason); berr != nil {
					return &FailurePathError{Op: OpDeadLetter, Topic: topic, Err: berr, Cause: err}
				}
			}
			dl := DeadLetterMessage(d, reason, err, clock.Now())
			pctx, cancel := context.WithTimeout(ctx, timeout)
			dl.SetContext(pctx)
			perr := cfg.Publisher.Publish(topic, dl)
			cancel()
			if perr != nil {
				d.Logger().LogAttrs(ctx, slogLevelDeadLetterFailed, "dead-letter publish failed; message will be redelivered",
					attrErr(perr), slogReason(reason))
				return &FailurePathError{Op: OpDeadLetter, Topic: topic, Err: perr, Cause: err}
			}
			d.DeadLettered = true
			markDeadLettered(ctx, reason, err)
			d.Logger().LogAttrs(ctx, slogLevelDeadLetter, "message dead-lettered",
				slogReason(reason), attrErr(err), attrAttempt(d.Attempt), slogTopic(topic))
			if cfg.OnDeadLetter != nil {
				cfg.OnDeadLetter(d, reason, err)
			}
			return nil
		}
	}
}

// DeadLetterMessage builds the dead letter for d: same UUID, payload and
// headers as the original, plus the failure metadata, minus the delayed-retry
// headers (sy_retry_group, sy_attempt, sy_first_failure). The error text is
// cut to [MaxErrorText] bytes.
func DeadLetterMessage(d *Delivery, reason failure.Reason, err error, now time.Time) *message.Message {
	dl := message.NewMessage(d.Msg.UUID, d.Msg.Payload)
	for k, v := range d.Msg.Metadata {
		dl.Metadata[k] = v
	}
	first, last := d.FirstFailure, d.LastFailure
	if last.IsZero() {
		last = now
	}
	if first.IsZero() {
		first = last
	}
	attempts := d.Attempt
	if attempts < 1 {
		attempts = 1
	}
	dl.Metadata[header.DeadLetterReason] = string(reason)
	dl.Metadata[header.DeadLetterError] = trimText(err.Error(), MaxErrorText)
	dl.Metadata[header.DeadLetterHandler] = d.Handler.Name
	dl.Metadata[header.DeadLetterGroup] = d.Handler.Group
	dl.Metadata[header.DeadLetterTopic] = d.Handler.Topic
	dl.Metadata[header.DeadLetterAttempts] = strconv.Itoa(attempts)
	dl.Metadata[header.DeadLetterFirstFailure] = first.UTC().Format(time.RFC3339Nano)
	dl.Metadata[header.DeadLetterLastFailure] = last.UTC().Format(time.RFC3339Nano)
	// A dead letter is addressed to nobody: drop routing of delayed retries.
	// Drop their attempt count and first failure too (the sy_dlq_ headers
	// keep them): a replayed dead letter gets the whole retry policy again
	// instead of being given up on after one attempt.
	delete(dl.Metadata, header.RetryTarget)
	delete(dl.Metadata, header.Attempt)
	delete(dl.Metadata, header.FirstFailure)
	return dl
}
