package amqp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// ErrUnroutable is wrapped by Publish when RabbitMQ returned a message because
// no queue is bound to the topic's exchange (no consumer group subscribed
// yet), unless [Config.AllowUnroutable] is set.
var ErrUnroutable = errors.New("amqp: unroutable: no consumer group queue is bound to the topic")

// ErrBlocked is wrapped by Publish while RabbitMQ blocks publishing
// connections (connection.blocked: a memory or disk alarm). It is
// transient: publishing resumes when the alarm clears.
var ErrBlocked = errors.New("amqp: broker blocks publishing (resource alarm)")

// ErrNacked is wrapped by Publish when RabbitMQ refused a message (basic.nack).
var ErrNacked = errors.New("amqp: broker nacked the message")

// Broker is two RabbitMQ connections, kept up by reconnecting: one for
// publishing and declaring topology, one for consuming (so that flow control
// on a busy publisher never holds back consumers' acks). It gives a shared
// publisher and subscribers per consumer group, and implements
// [broker.Broker] and [broker.Delayer].
type Broker struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	subs   map[*Subscriber]struct{}

	pubLink *link
	subLink *link

	done    chan struct{}      // closed by Close
	stopCtx context.Context    // cancelled by Close, bounds reconnect dials
	stop    context.CancelFunc // cancels stopCtx
	wg      sync.WaitGroup

	topo    topology
	pub     *Publisher
	blocked atomic.Pointer[string] // reason while RabbitMQ blocks publishing
	// serverMajor is the major version of the RabbitMQ the publishing
	// connection reaches (0: unknown), for arguments whose meaning changed.
	serverMajor atomic.Int32
}

var (
	_ broker.Broker  = (*Broker)(nil)
	_ broker.Delayer = (*Broker)(nil)
)

// New connects to RabbitMQ and returns a Broker. It fails if the
// configuration is invalid or the first connections cannot be made; later
// connection losses are repaired in the background. A nil logger discards.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("amqp: invalid config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b := &Broker{
		cfg:  cfg,
		log:  logger.With("broker", "amqp"),
		subs: map[*Subscriber]struct{}{},
		done: make(chan struct{}),
	}
	b.topo.b = b
	b.stopCtx, b.stop = context.WithCancel(context.Background())
	b.pubLink = &link{b: b, role: "publish", changed: make(chan struct{})}
	b.subLink = &link{b: b, role: "consume", changed: make(chan struct{})}
	pubConn, pubURL, err := b.pubLink.dial(ctx)
	if err != nil {
		b.stop()
		return nil, err
	}
	subConn, subURL, err := b.subLink.dial(ctx)
	if err != nil {
		b.stop()
		_ = pubConn.Close()
		return nil, err
	}
	for l, conn := range map[*link]*amqp091.Connection{b.pubLink: pubConn, b.subLink: subConn} {
		l.set(conn)
		b.wg.Add(1)
		go l.watch(conn)
	}
	b.pub = newPublisher(b)
	b.log.Info("connected", "url", pubURL, "consume_url", subURL, "server_version", serverVersion(pubConn))
	for _, w := range cfg.securityWarnings() {
		b.log.Warn(w, "url", cfg.RedactedURL())
	}
	return b, nil
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// link is one connection kept up by reconnecting.
type link struct {
	b    *Broker
	role string // "publish" or "consume", appended to the connection name

	mu      sync.Mutex
	conn    *amqp091.Connection // nil while disconnected
	gen     uint64              // incremented on every new connection
	changed chan struct{}       // closed and replaced when conn changes
	// lost is why the connection is down (the close reason, then the last
	// failed reconnect), for Check; nil while connected.
	lost error
	// node is the index in the configured endpoints of the node the link
	// connected to last: a dial tries it first, then the next ones in turn
	// (Config.URLs). Only dial, from one goroutine at a time, uses it.
	node int
}

// dial connects to the first configured node that accepts, starting with
// the one it connected to last, and returns the connection and that
// node's redacted URL. It fails with the errors of every node when none
// does.
func (l *link) dial(ctx context.Context) (*amqp091.Connection, string, error) {
	eps := l.b.cfg.endpoints()
	var errs []error
	for k := range eps {
		i := (l.node + k) % len(eps)
		conn, err := l.dialOne(ctx, eps[i])
		if err == nil {
			l.node = i
			return conn, redact(eps[i]), nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", errors.Join(errs...)
}

func (l *link) dialOne(ctx context.Context, rawURL string) (*amqp091.Connection, error) {
	dc, err := l.b.cfg.dialConfig(l.role, rawURL)
	if err != nil {
		return nil, fmt.Errorf("amqp: connect to %s: %w", redact(rawURL), err)
	}
	type result struct {
		conn *amqp091.Connection
		err  error
	}
	res := make(chan result, 1)
	go func() {
		c, err := amqp091.DialConfig(rawURL, dc)
		res <- result{c, err}
	}()
	select {
	case r := <-res:
		if r.err != nil {
			return nil, fmt.Errorf("amqp: connect to %s: %w", redact(rawURL), r.err)
		}
		return r.conn, nil
	case <-ctx.Done():
		go func() { // close the connection if the dial completes later
			if r := <-res; r.conn != nil {
				_ = r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("amqp: connect to %s: %w", redact(rawURL), ctx.Err())
	}
}

func (l *link) set(conn *amqp091.Connection) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conn = conn
	if conn != nil {
		l.gen++
		l.lost = nil
	}
	close(l.changed)
	l.changed = make(chan struct{})
	if l.role != "publish" {
		return
	}
	b := l.b
	b.blocked.Store(nil)
	if conn == nil {
		return
	}
	b.serverMajor.Store(majorVersion(serverVersion(conn)))
	blocks := conn.NotifyBlocked(make(chan amqp091.Blocking, 1))
	b.wg.Add(1)
	go func() { // ends when the connection closes its notification channels
		defer b.wg.Done()
		for bl := range blocks {
			if bl.Active {
				reason := bl.Reason
				b.blocked.Store(&reason)
				b.log.Warn("broker blocks publishing", "reason", reason)
			} else {
				b.blocked.Store(nil)
				b.log.Info("broker unblocked publishing")
			}
		}
	}()
}

// get returns the current connection and its generation, or an error
// wrapping [broker.ErrDisconnected] or [broker.ErrClosed].
func (l *link) get() (*amqp091.Connection, uint64, error) {
	if l.b.isClosed() {
		return nil, 0, broker.ErrClosed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || l.conn.IsClosed() {
		return nil, 0, broker.ErrDisconnected
	}
	return l.conn, l.gen, nil
}

// wait waits until a connection is up, or stop/ctx ends the wait.
func (l *link) wait(ctx context.Context, stop <-chan struct{}) (*amqp091.Connection, error) {
	for {
		if l.b.isClosed() {
			return nil, broker.ErrClosed
		}
		l.mu.Lock()
		conn, changed := l.conn, l.changed
		l.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-changed:
		case <-stop:
			return nil, broker.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second): // conn closed but watch has not noticed yet
		}
	}
}

// watch reconnects with exponential backoff whenever the connection is lost.
func (l *link) watch(conn *amqp091.Connection) {
	b := l.b
	defer b.wg.Done()
	for {
		closeCh := conn.NotifyClose(make(chan *amqp091.Error, 1))
		var cerr *amqp091.Error
		select {
		case cerr = <-closeCh:
		case <-b.done:
			return
		}
		l.set(nil)
		l.setLost(cerr)
		if l.role == "publish" {
			b.topo.reset()
		}
		b.log.Warn("connection lost; reconnecting", "connection", l.role, "error", cerr)
		backoff := b.cfg.ReconnectBackoff
		var url string
		for {
			select {
			case <-b.done:
				return
			case <-time.After(backoff):
			}
			ctx, cancel := context.WithTimeout(b.stopCtx, 30*time.Second)
			c, u, err := l.dial(ctx)
			cancel()
			if err == nil {
				conn, url = c, u
				break
			}
			l.setLost(err)
			b.log.Warn("reconnect failed", "connection", l.role, "error", err, "retry_in", backoff)
			backoff = min(backoff*2, b.cfg.MaxReconnectBackoff)
		}
		b.mu.Lock() // held so that Close cannot miss this connection
		if b.closed {
			b.mu.Unlock()
			_ = conn.Close()
			return
		}
		l.set(conn)
		b.mu.Unlock()
		b.log.Info("reconnected", "connection", l.role, "url", url)
	}
}

// setLost records why the connection is down; a nil *amqp091.Error (the
// connection closed without one) reads as "closed".
func (l *link) setLost(err error) {
	if aerr, ok := err.(*amqp091.Error); ok && aerr == nil {
		err = nil
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	l.mu.Lock()
	if l.conn == nil {
		l.lost = err
	}
	l.mu.Unlock()
}

// state returns nil while the link is connected, else why not.
func (l *link) state() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil && !l.conn.IsClosed() {
		return nil
	}
	if l.lost != nil {
		return l.lost
	}
	return errors.New("connection closed")
}

// close closes the current connection, if any.
func (l *link) close() error {
	l.mu.Lock()
	conn := l.conn
	l.conn = nil
	l.mu.Unlock()
	if conn == nil || conn.IsClosed() {
		return nil
	}
	if err := conn.Close(); err != nil && !errors.Is(err, amqp091.ErrClosed) {
		return fmt.Errorf("amqp: close %s connection: %w", l.role, err)
	}
	return nil
}

// Name returns "amqp".
func (b *Broker) Name() string { return "amqp" }

// Publisher returns the broker's confirmed publisher.
func (b *Broker) Publisher() message.Publisher { return b.pub }

// Subscriber returns a subscriber consuming as group. See [Subscriber].
func (b *Broker) Subscriber(group string, opts broker.SubscriberOptions) (message.Subscriber, error) {
	return b.NewSubscriber(group, opts)
}

// NewSubscriber is [Broker.Subscriber] returning the concrete type.
func (b *Broker) NewSubscriber(group string, opts broker.SubscriberOptions) (*Subscriber, error) {
	if group == "" {
		return nil, errors.New("amqp: subscriber: consumer group is required")
	}
	if opts.Prefetch < 0 || opts.Prefetch > 65535 {
		return nil, fmt.Errorf("amqp: subscriber %q: prefetch %d, want 0 (default %d) to 65535", group, opts.Prefetch, b.cfg.Prefetch)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, broker.ErrClosed
	}
	s := newSubscriber(b, group, opts)
	b.subs[s] = struct{}{}
	return s, nil
}

func (b *Broker) forget(s *Subscriber) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// Capabilities reports what RabbitMQ guarantees through this adapter.
func (b *Broker) Capabilities() broker.Capabilities {
	return broker.Capabilities{
		Delivery:          "at-least-once",
		Ordering:          broker.OrderPerQueue,
		DelayedRedelivery: true,
		Durable:           true,
	}
}

// Close closes the publisher (waiting for publishes in progress), every
// subscriber (unacked messages are requeued by RabbitMQ) and the connection.
// It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true // refuse new subscribers; reconnect loops give up
	subs := make([]*Subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	var errs []error
	if err := b.pub.Close(); err != nil {
		errs = append(errs, err)
	}
	for _, s := range subs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	b.topo.close()
	close(b.done)
	b.stop()
	b.mu.Lock() // a reconnect in progress either sees closed or set its link already
	links := []*link{b.pubLink, b.subLink}
	b.mu.Unlock()
	for _, l := range links {
		if err := l.close(); err != nil {
			errs = append(errs, err)
		}
	}
	b.wg.Wait()
	return errors.Join(errs...)
}

// serverVersion is the version RabbitMQ announces ("3.10.8"), or "".
func serverVersion(conn *amqp091.Connection) string {
	v, _ := conn.Properties["version"].(string)
	return v
}

// majorVersion is the major number of a version such as "4.0.5", or 0.
func majorVersion(v string) int32 {
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 0 || n > 1000 {
		return 0
	}
	return int32(n)
}

// disconnectedErr wraps err with broker.ErrDisconnected when the failure came
// from a lost connection or channel.
func disconnectedErr(err error) error {
	if err == nil || errors.Is(err, broker.ErrDisconnected) || errors.Is(err, broker.ErrClosed) {
		return err
	}
	var aerr *amqp091.Error
	if errors.Is(err, amqp091.ErrClosed) || (errors.As(err, &aerr) && !aerr.Server) ||
		(errors.As(err, &aerr) && aerr.Code == amqp091.ConnectionForced) {
		return fmt.Errorf("%w: %w", broker.ErrDisconnected, err)
	}
	return err
}
