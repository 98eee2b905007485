// Package middleware is Switchyard's shared failure path and cross-cutting
// concerns, the same on every broker: panic recovery, retry with exponential
// backoff and jitter, per-attempt timeouts, dead-lettering with full failure
// metadata, a hop-limit guard against event loops, correlation and logging,
// idempotency, tracing and metrics.
//
// # The default stack and its order
//
// Order matters (a retry outside the dead-letter step would retry the
// dead-letter publish; a timeout outside the retry step would give every retry
// an already expired context). The runtime builds, outermost first:
//
//	(runtime)      recovers any panic in the stack below: dead-letters it
//	Tracing        span per delivery, continued from the message's trace context
//	Correlation    correlation id and a per-message logger into the context
//	DeadLetter     gives up: publishes to the dead-letter topic, then acks
//	HopLimit       refuses a chain that passed too many handlers (a loop)
//	Idempotency    skips a message already handled (when a store is configured);
//	               Retry hands delayed retries back through IdempotentDelay so
//	               the key is released, not marked done
//	Retry          in-process retries with backoff; permanent errors skip it
//	  user middleware, in the order given: runs once per attempt
//	Timeout        per attempt
//	Recover        a panic becomes an error carrying the stack
//	handler        decode (permanent on failure), then the typed function
//
// A [Handler] returning nil acks the message. An error returned out of the
// whole stack nacks it (the broker redelivers it later): that happens only
// when the failure path itself failed ([FailurePathError]: a dead letter or
// a delayed retry the broker did not take in time), or when shutdown
// interrupted a retry, so nothing is lost.
//
// # Waiting without holding a worker
//
// Middleware that waits inside the stack (Retry's backoff, Idempotency's
// busy key) waits with [Delivery.Wait], which gives the delivery's [Slot]
// up meanwhile: the runtime runs other messages while it waits.
package middleware
