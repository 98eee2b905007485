package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// DefaultRequestTimeout is how long [Request] waits for a reply when its
// context has no deadline and [WithRequestTimeout] was not given.
const DefaultRequestTimeout = 10 * time.Second

// Request-reply errors.
var (
	// ErrRequestTimeout is wrapped by Request's error when no reply came
	// before the deadline. The error wraps context.DeadlineExceeded too.
	ErrRequestTimeout = errors.New("service: request timed out")
	// ErrNoReplies is returned by Request and Reply on a broker that
	// cannot route replies to one instance (it does not implement
	// [broker.Inboxer]).
	ErrNoReplies = errors.New("service: broker cannot route replies (no broker.Inboxer)")
	// ErrNotARequest is the permanent error of a Reply handler given an
	// event that was published, not requested: it has no reply address.
	// The event is dead-lettered.
	ErrNotARequest = errors.New("service: event has no reply address: it was published, not sent with Request")
	// ErrInboxClosed is returned by Request when the inbox the reply was
	// to come to closed while it waited (the broker was closed).
	ErrInboxClosed = errors.New("service: reply inbox closed")
)

// CodeDeadLettered is the [ReplyError] code of a request the replier gave
// up on: its handler failed with an error that was not a ReplyError, and
// retries did not help (or the error was permanent), so the request was
// dead-lettered. The message says why.
const CodeDeadLettered = "switchyard.dead_lettered"

// ReplyError is an answer that refuses a request: a replier returns it (or
// an error wrapping it) from its function, and [Request] returns it to the
// requester, who can tell it apart with errors.As. Unlike other errors of a
// replier, it is not retried: it is the answer.
type ReplyError struct {
	// Code is machine-readable ("out_of_stock"); [CodeDeadLettered] is the
	// runtime's own.
	Code string
	// Message is for people.
	Message string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("service: request refused: %s: %s", e.Code, e.Message)
}

// WithRequestTimeout sets how long [Request] waits when its context has no
// deadline. Default [DefaultRequestTimeout].
func WithRequestTimeout(d time.Duration) Option { return func(s *Service) { s.requestTimeout = d } }

// Request publishes req like [Service.Publish] (to req's topic, through
// the broker's confirm; options as for Publish) with the address of this
// instance's inbox, and waits for the reply of the [Reply] handler that
// consumes it: the response, a [*ReplyError] the replier returned, or,
// once ctx's deadline (or [WithRequestTimeout] when ctx has none) passed,
// an error wrapping [ErrRequestTimeout].
//
// Replies come to this instance only: the first Request opens an inbox on
// the broker ([broker.Inboxer]) that lives as long as the broker. A reply
// that comes after Request gave up is dropped. The request is an ordinary
// event on the replier's side, with retries, dead-lettering and
// redelivery: a replier that restarts while a request waits answers it
// once it is back, if that is before the deadline; after the deadline the
// replier skips it. Called from a handler, Request continues its chain
// (correlation, causation) and the handler must declare Req with
// [Publishes]. Replies are matched by request id: a Request whose id
// ([WithID]) is that of a request still waiting is refused.
//
// With tracing on, the request gets the producer span ("send <topic>")
// Publish would give it, lasting until the reply or the deadline and
// ended with an error status when Request returns one; the replier's span
// is its child, and the span links to the trace context the reply
// carries.
func Request[Req, Resp event.Event](ctx context.Context, s *Service, req Req, opts ...PublishOption) (_ Resp, err error) {
	var zero Resp
	if s.optErr != nil {
		return zero, s.optErr
	}
	ib, ok := s.broker.(broker.Inboxer)
	if !ok {
		return zero, fmt.Errorf("%w: %s", ErrNoReplies, s.broker.Name())
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.requestTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	var span trace.Span
	if s.tracer != nil {
		// The producer span Publish would give the request, lasting until
		// the reply (or the deadline): the request carries its context, so
		// the replier's span is its child, and the span links to the
		// reply's context.
		ctx, span = s.startProducerSpan(ctx, req, opts)
		defer func() { endProducerSpan(span, err, true) }()
	}
	inbox, err := s.requests.inbox(ctx, s, ib)
	if err != nil {
		return zero, s.requestFailed(ctx, req, err)
	}
	msg, topic, err := s.newMessage(ctx, req, nil, opts)
	if err != nil {
		return zero, err
	}
	msg.Metadata[header.ReplyTo] = inbox.Address()
	msg.Metadata[header.ReplyDeadline] = deadline.UTC().Format(time.RFC3339Nano)
	if span != nil {
		s.setProducerAttributes(span, msg)
	}
	wait, err := s.requests.expect(msg.UUID)
	if err != nil {
		return zero, fmt.Errorf("service: request %s: %w", req.EventType(), err)
	}
	defer s.requests.forget(msg.UUID)
	if err := s.publish(topic, req, msg); err != nil {
		return zero, err
	}
	select {
	case reply, ok := <-wait:
		if !ok {
			return zero, fmt.Errorf("service: request %s %s: %w", req.EventType(), msg.UUID, ErrInboxClosed)
		}
		if span != nil {
			linkReply(span, reply)
		}
		return decodeReply[Resp](s, reply)
	case <-ctx.Done():
		return zero, s.requestFailed(ctx, req, fmt.Errorf("no reply to %s", msg.UUID))
	}
}

// linkReply links a request's span to the reply's trace context (the
// replier's span, when it traces), so the trace shows the way back.
func linkReply(span trace.Span, reply *message.Message) {
	env := event.Envelope{TraceParent: reply.Metadata.Get(header.TraceParent), TraceState: reply.Metadata.Get(header.TraceState)}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), middleware.TraceCarrier{Env: &env}))
	if sc.IsValid() {
		span.AddLink(trace.Link{SpanContext: sc})
	}
}

// requestFailed is the error of a request that ended with ctx, or err.
func (s *Service) requestFailed(ctx context.Context, req event.Event, err error) error {
	if ctx.Err() == nil {
		return fmt.Errorf("service: request %s: %w", req.EventType(), err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %v: %w", ErrRequestTimeout, req.EventType(), err, ctx.Err())
	}
	return fmt.Errorf("service: request %s: %v: %w", req.EventType(), err, ctx.Err())
}

// decodeReply turns a reply into the response or the replier's ReplyError.
func decodeReply[Resp event.Event](s *Service, m *message.Message) (Resp, error) {
	var resp Resp
	if code, ok := m.Metadata[header.ReplyErrorCode]; ok {
		return resp, &ReplyError{Code: code, Message: m.Metadata[header.ReplyErrorMessage]}
	}
	env, err := event.ReadEnvelope(m)
	if err != nil {
		return resp, fmt.Errorf("service: reply to %s: %w", m.Metadata[header.ReplyFor], err)
	}
	if env.Type != resp.EventType() {
		return resp, fmt.Errorf("service: reply to %s is a %s, want %s", m.Metadata[header.ReplyFor], env.Type, resp.EventType())
	}
	if err := event.DecodeInto(s.registry, s.codec, &env, m.Payload, &resp); err != nil {
		return resp, fmt.Errorf("service: reply to %s: %w", m.Metadata[header.ReplyFor], err)
	}
	return resp, nil
}

// requester is a service's side of request-reply: its inbox and the
// requests waiting for a reply, by request id.
type requester struct {
	openMu sync.Mutex // one OpenInbox at a time

	mu      sync.Mutex
	current broker.Inbox
	pending map[string]chan *message.Message
}

// inbox returns the open inbox, opening one (and its reader) if there is
// none: on the first request, or after the last one closed.
func (r *requester) inbox(ctx context.Context, s *Service, ib broker.Inboxer) (broker.Inbox, error) {
	r.mu.Lock()
	in := r.current
	r.mu.Unlock()
	if in != nil {
		return in, nil
	}
	r.openMu.Lock()
	defer r.openMu.Unlock()
	r.mu.Lock()
	in = r.current
	r.mu.Unlock()
	if in != nil {
		return in, nil
	}
	in, err := ib.OpenInbox(ctx)
	if err != nil {
		return nil, fmt.Errorf("open reply inbox: %w", err)
	}
	r.mu.Lock()
	r.current = in
	r.mu.Unlock()
	go r.read(s, in)
	return in, nil
}

// expect registers a request id before its request is published, so that
// even a reply faster than the publish's confirm finds it. Replies are
// matched by request id alone, so an id already waiting (the same WithID
// twice at once) is refused: the two requests would take each other's
// reply, and the first to return would forget the other's wait.
func (r *requester) expect(id string) (<-chan *message.Message, error) {
	ch := make(chan *message.Message, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string]chan *message.Message{}
	}
	if _, dup := r.pending[id]; dup {
		return nil, fmt.Errorf("request id %q already waits for a reply: ids of requests in flight must differ (WithID)", id)
	}
	r.pending[id] = ch
	return ch, nil
}

func (r *requester) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, id)
}

// read hands each reply of in to the request waiting for it, and drops
// the others: late replies (their Request gave up) and duplicates (a
// replier's redelivery answered twice). When in closes, the requests
// waiting are told, and the next Request opens a new inbox.
func (r *requester) read(s *Service, in broker.Inbox) {
	for m := range in.Messages() {
		id := m.Metadata[header.ReplyFor]
		r.mu.Lock()
		ch := r.pending[id]
		delete(r.pending, id)
		r.mu.Unlock()
		if ch == nil {
			s.logger.Debug("dropping a reply no request waits for (late or duplicate)", slog.String("request_id", id))
			continue
		}
		ch <- m // buffered, and delivered at most once
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == in {
		r.current = nil
	}
	for id, ch := range r.pending {
		close(ch)
		delete(r.pending, id)
	}
}

// ReplyAddress is the address of this instance's reply inbox, the one
// [Request] puts on its requests; "" while none is open (before the first
// Request). A handler that answers in memory when the requester is its own
// process tells its own requests from another instance's by it.
func (s *Service) ReplyAddress() string {
	s.requests.mu.Lock()
	defer s.requests.mu.Unlock()
	if s.requests.current == nil {
		return ""
	}
	return s.requests.current.Address()
}
