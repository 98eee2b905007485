package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// Reply registers fn as the handler named name that answers requests of
// type Req sent with [Request]: it is a [Handle] handler in every way
// (consumer group, retries, dead-lettering, options), whose result is sent
// back to the requesting instance's inbox rather than published. Resp is
// declared as what the handler publishes.
//
// What fn returns decides the answer:
//   - a response and nil: the response is the reply;
//   - a [*ReplyError] (or an error wrapping one): the refusal is the
//     reply, and the request is done (not retried);
//   - any other error: the request fails like any event: it is retried
//     by the handler's policy and, once given up on, dead-lettered, and
//     the requester then gets a ReplyError with code [CodeDeadLettered]
//     at once instead of waiting for its timeout.
//
// A request whose deadline has passed is skipped (acked unanswered): its
// requester no longer waits. The handler's context carries that deadline.
// An event of type Req published without Request has nowhere to go and is
// dead-lettered ([ErrNotARequest]).
func Reply[Req, Resp event.Event](s *Service, name string, fn func(ctx context.Context, req Req) (Resp, error), opts ...HandlerOption) error {
	if s.optErr != nil {
		return s.optErr
	}
	ib, ok := s.broker.(broker.Inboxer)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoReplies, s.broker.Name())
	}
	var zero Resp
	opts = append(opts[:len(opts):len(opts)], Publishes(zero), func(h *handlerSpec) {
		h.onDeadLetter = func(d *middleware.Delivery, reason failure.Reason, err error) {
			if d.Msg.Metadata[header.ReplyTo] == "" {
				return // published, not requested: nobody waits
			}
			ctx := middleware.WithDelivery(context.Background(), d)
			rerr := &ReplyError{Code: CodeDeadLettered, Message: fmt.Sprintf("%s: %v", reason, err)}
			if serr := s.sendReply(ctx, ib, d, zero, rerr); serr != nil {
				d.Logger().Warn("the requester of a dead-lettered request was not told; it will time out", slog.Any("error", serr))
			}
		}
	})
	return Handle(s, name, func(ctx context.Context, req Req) error {
		d := middleware.DeliveryFrom(ctx)
		if d == nil || d.Msg.Metadata[header.ReplyTo] == "" {
			return failure.Permanent(ErrNotARequest)
		}
		if raw := d.Msg.Metadata[header.ReplyDeadline]; raw != "" {
			deadline, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				return failure.Permanent(fmt.Errorf("service: header %s: %q, want RFC 3339: %w", header.ReplyDeadline, raw, err))
			}
			if !s.clock.Now().Before(deadline) {
				d.Logger().Debug("skipping a request whose requester gave up", slog.Time("deadline", deadline))
				return nil
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		resp, err := fn(ctx, req)
		var rerr *ReplyError
		if err != nil && !errors.As(err, &rerr) {
			return err
		}
		return s.sendReply(ctx, ib, d, resp, rerr)
	}, opts...)
}

// sendReply sends resp, or rerr if not nil, to d's requester, bounded by
// the failure path's timeout. An inbox that is gone is not an error: the
// requester stopped waiting, so there is nobody to tell.
func (s *Service) sendReply(ctx context.Context, ib broker.Inboxer, d *middleware.Delivery, resp event.Event, rerr *ReplyError) error {
	msg, _, err := s.newMessage(ctx, resp, nil, nil)
	if err != nil {
		return err
	}
	msg.Metadata[header.ReplyFor] = d.Envelope.ID
	if rerr != nil {
		msg.Metadata[header.ReplyErrorCode] = rerr.Code
		msg.Metadata[header.ReplyErrorMessage] = rerr.Message
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.failurePathTimeout)
	defer cancel()
	msg.SetContext(ctx)
	to := d.Msg.Metadata[header.ReplyTo]
	if err := ib.SendToInbox(ctx, to, msg); err != nil {
		if errors.Is(err, broker.ErrNoInbox) {
			d.Logger().Debug("dropping a reply: the requester's inbox is gone", slog.String("inbox", to))
			return nil
		}
		return fmt.Errorf("service: reply to %s: %w", to, err)
	}
	return nil
}

// Answer sends resp, or rerr when it is not nil, as the reply to the
// message being handled in ctx, to the inbox its sender named with
// [Request]. It is for handlers that answer requests without being [Reply]
// handlers: package command's handlers answer SendAndWait this way, on
// their own terms (a late command is still handled; a rejection is an
// answer). The handler must declare resp's type with [Publishes].
//
// A message without a reply address (it was published, not requested) is
// not answered: Answer returns nil. So is one whose requester's inbox is
// gone: nobody waits. Outside a handler it returns an error.
func Answer(ctx context.Context, s *Service, resp event.Event, rerr *ReplyError) error {
	d := middleware.DeliveryFrom(ctx)
	if d == nil {
		return errors.New("service: answer: not called from a handler (no delivery in ctx)")
	}
	if d.Msg.Metadata[header.ReplyTo] == "" {
		return nil
	}
	ib, ok := s.broker.(broker.Inboxer)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoReplies, s.broker.Name())
	}
	return s.sendReply(ctx, ib, d, resp, rerr)
}

// OnDuplicate calls fn for each message of the handler that deduplication
// ([WithIdempotency]) skipped as already handled, with a context carrying
// the skipped delivery: a handler that answers requests with [Answer] can
// still answer a duplicate (the sender would wait in vain otherwise).
func OnDuplicate(fn func(ctx context.Context)) HandlerOption {
	return func(h *handlerSpec) { h.onDuplicate = fn }
}
