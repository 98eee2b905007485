package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Outcome errors of [Bus.SendAndWait].
var (
	// ErrNoOutcome is wrapped by SendAndWait's error when its context
	// ended before the command's outcome was known: the command was sent
	// and may still be handled.
	ErrNoOutcome = errors.New("command: no outcome yet")
	// ErrFailed is wrapped by SendAndWait's error when the command's
	// handler failed for good (a permanent error, or its last attempt):
	// the command was dead-lettered. Handled in the sender's process, the
	// error wraps the handler's error too; elsewhere it carries its text.
	ErrFailed = errors.New("command: handler failed, command dead-lettered")
	// ErrAlreadyHandled is returned by SendAndWait for a command that
	// deduplication (service.WithIdempotency) skipped because its id was
	// handled before: its outcome then is not kept, so there is none to
	// give (the read model has it).
	ErrAlreadyHandled = errors.New("command: already handled (a duplicate id); its outcome is not kept")
)

// Result is the outcome of a command that was handled.
type Result struct {
	// ID is the command's message id.
	ID string
	// Version is the aggregate's version after the command, when its
	// handler decided with [Execute] or [OnAggregate]: a read model that
	// reached it shows the command's effect. Zero otherwise.
	Version int
}

type outcome struct {
	version int
	err     error
	cause   error // of a failure: the handler's error, which err wraps with ErrFailed
}

// outcomeReply is how a command's outcome travels from the instance that
// handled it to the sender's inbox. A failure travels as a
// service.ReplyError with code service.CodeDeadLettered instead: the reply
// headers of request-reply.
type outcomeReply struct {
	Version int `json:"version,omitempty"`
	// Rejected, Reason and Reasons are a rejection: its text, and the
	// texts of the RejectionReasons it wraps.
	Rejected  bool     `json:"rejected,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Reasons   []string `json:"reasons,omitempty"`
	Duplicate bool     `json:"duplicate,omitempty"`
}

func (outcomeReply) EventType() string { return "switchyard.command_outcome" }
func (outcomeReply) EventVersion() int { return 1 }

// encode turns a final outcome into the reply sent to the sender's inbox.
func (b *Bus) encode(o outcome) (outcomeReply, *service.ReplyError) {
	var rej *RejectedError
	switch {
	case o.err == nil:
		return outcomeReply{Version: o.version}, nil
	case errors.Is(o.err, ErrAlreadyHandled):
		return outcomeReply{Duplicate: true}, nil
	case errors.As(o.err, &rej):
		r := outcomeReply{Version: o.version, Rejected: true, Reason: rej.Err.Error()}
		for _, known := range b.reasons {
			if errors.Is(rej.Err, known) {
				r.Reasons = append(r.Reasons, known.Error())
			}
		}
		return r, nil
	}
	cause := o.err
	if o.cause != nil {
		cause = o.cause
	}
	return outcomeReply{}, &service.ReplyError{Code: service.CodeDeadLettered, Message: cause.Error()}
}

// decode turns a reply from another instance back into an outcome: what
// the handler would have given a sender in its own process, as far as
// text and the RejectionReasons carry.
func (b *Bus) decode(r outcomeReply, rerr *service.ReplyError) outcome {
	switch {
	case rerr != nil:
		return outcome{err: fmt.Errorf("%w: %s", ErrFailed, rerr.Message)}
	case r.Duplicate:
		return outcome{err: ErrAlreadyHandled}
	case r.Rejected:
		reason := &remoteReason{text: r.Reason}
		for _, text := range r.Reasons {
			for _, known := range b.reasons {
				if known.Error() == text {
					reason.is = append(reason.is, known)
				}
			}
		}
		return outcome{version: r.Version, err: &RejectedError{Err: reason}}
	}
	return outcome{version: r.Version}
}

// remoteReason is a rejection's reason as it came from another instance:
// its text, and the RejectionReasons it wrapped there.
type remoteReason struct {
	text string
	is   []error
}

func (r *remoteReason) Error() string   { return r.text }
func (r *remoteReason) Unwrap() []error { return r.is }

// result is where Execute leaves the version for the bus, through the
// handler's context.
type result struct{ version int }

type resultKey struct{}

func setVersion(ctx context.Context, v int) {
	if r, ok := ctx.Value(resultKey{}).(*result); ok {
		r.version = v
	}
}

// SendAndWait sends cmd like [Bus.Send] and waits until its handler has
// decided, on whichever instance of the service took it: it returns the
// [Result] on success, an error wrapping the handler's [RejectedError]
// when the command broke a rule, an error wrapping [ErrFailed] once the
// command failed for good (a permanent error or the last attempt before
// the dead-letter topic), or, when ctx ends first, an error wrapping
// [ErrNoOutcome] and ctx's error (the command may still be handled). A ctx
// without a deadline waits as long as the service's request timeout
// (service.WithRequestTimeout, default 10s).
//
// The command carries the address of this instance's inbox (the inbox of
// service.Request), and the instance that handles it sends the outcome
// there; handled by this instance, the outcome is handed over in memory,
// with the handler's own error. From another instance a rejection comes
// back with its text, and errors.Is sees the reasons listed with
// [RejectionReasons]. A command that deduplication
// (service.WithIdempotency) skips as a redelivery of one already handled
// answers [ErrAlreadyHandled]. On a broker without inboxes
// (broker.Inboxer) only outcomes handled by this instance are seen.
func (b *Bus) SendAndWait(ctx context.Context, cmd event.Event, opts ...SendOption) (Result, error) {
	spec, err := b.spec(cmd, opts)
	if err != nil {
		return Result{}, err
	}
	// Registered before publishing: the handler may finish first.
	local := make(chan outcome, 1)
	b.mu.Lock()
	if _, dup := b.waiters[spec.id]; dup {
		b.mu.Unlock()
		return Result{}, fmt.Errorf("command: send %s: a send with id %q is already waiting", cmd.EventType(), spec.id)
	}
	b.waiters[spec.id] = local
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiters, spec.id)
		b.mu.Unlock()
	}()
	if _, ok := b.svc.Broker().(broker.Inboxer); !ok {
		if err := b.publish(ctx, cmd, spec); err != nil {
			return Result{ID: spec.id}, err
		}
		select {
		case o := <-local:
			return Result{ID: spec.id, Version: o.version}, o.err
		case <-ctx.Done():
			return Result{ID: spec.id}, b.noOutcome(cmd, spec.id, ctx.Err())
		}
	}

	// The request publishes the command with the inbox's address and waits
	// for a reply from another instance; an outcome handled here ends it.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		reply outcomeReply
		err   error
	}
	remote := make(chan answer, 1)
	go func() {
		r, err := service.Request[event.Event, outcomeReply](rctx, b.svc, cmd, service.ToTopic(b.cfg.Topic), service.WithID(spec.id))
		remote <- answer{r, err}
	}()
	select {
	case o := <-local:
		cancel()
		<-remote
		return Result{ID: spec.id, Version: o.version}, o.err
	case a := <-remote:
		var rerr *service.ReplyError
		switch {
		case a.err == nil || errors.As(a.err, &rerr):
			o := b.decode(a.reply, rerr)
			return Result{ID: spec.id, Version: o.version}, o.err
		case errors.Is(a.err, service.ErrRequestTimeout) || errors.Is(a.err, service.ErrInboxClosed) || ctx.Err() != nil:
			// Sent (or maybe sent), but the answer can no longer come.
			select { // it may have been decided here as the request gave up
			case o := <-local:
				return Result{ID: spec.id, Version: o.version}, o.err
			default:
			}
			return Result{ID: spec.id}, b.noOutcome(cmd, spec.id, a.err)
		}
		return Result{ID: spec.id}, fmt.Errorf("command: send %s: %w", cmd.EventType(), a.err)
	}
}

func (b *Bus) noOutcome(cmd event.Event, id string, err error) error {
	return fmt.Errorf("command: %s %s: %w: %w", cmd.EventType(), id, ErrNoOutcome, err)
}

// resolve hands o to the SendAndWait of this process waiting for the
// command id and reports whether there was one.
func (b *Bus) resolve(id string, o outcome) bool {
	b.mu.Lock()
	ch := b.waiters[id]
	delete(b.waiters, id)
	b.mu.Unlock()
	if ch != nil {
		ch <- o
	}
	return ch != nil
}

// RejectedError is a command refused by its handler because it breaks a
// rule ("can't ship before payment"). It is the command's answer, not a
// failure: the command is acknowledged and not dead-lettered.
type RejectedError struct{ Err error }

func (e *RejectedError) Error() string { return "command rejected: " + e.Err.Error() }
func (e *RejectedError) Unwrap() error { return e.Err }

// Reject marks err as the rule a command breaks; errors.Is and errors.As
// still see err.
func Reject(err error) error {
	if err == nil {
		return nil
	}
	return &RejectedError{Err: err}
}

// IsRejected reports whether err is, or wraps, a [RejectedError].
func IsRejected(err error) bool {
	var r *RejectedError
	return errors.As(err, &r)
}
