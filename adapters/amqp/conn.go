package amqp

import (
	"net"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// maxWriteBuffer bounds what a coalescingConn holds unwritten: beyond it,
// Write waits for the socket (TCP backpressure still reaches publishers).
const maxWriteBuffer = 1 << 20

// dialCoalescing is amqp091-go's default dialer with writes coalesced (see
// coalescingConn).
func dialCoalescing(network, addr string) (net.Conn, error) {
	conn, err := amqp091.DefaultDial(30*time.Second)(network, addr)
	if err != nil {
		return nil, err
	}
	return newCoalescingConn(conn), nil
}

// coalescingConn writes to its connection from one goroutine: Write copies
// the bytes into a buffer and returns, and the goroutine writes whatever
// has accumulated with one system call. amqp091-go flushes its socket after
// every publish and every ack, holding the connection's lock; with this,
// the publishes and acks of concurrent callers that arrive while one write
// is in progress leave together in the next one.
//
// Order is kept (one buffer, one writer). A write error is returned by the
// next Write and closes the connection, so that amqp091-go's reader fails
// and the connection is shut down (and reconnected) as for any socket
// error. Publisher confirms still mean what they meant: a message is
// confirmed only once RabbitMQ received it.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	space   sync.Cond // signalled when buf shrinks or the writer stops
	buf     []byte    // waiting to be written
	spare   []byte
	err     error // the first write error; set, the writer has stopped
	writing bool  // the writer is writing what it took from buf
	closed  bool
	wake    chan struct{} // capacity 1: there is something to write
	stopped chan struct{} // the writer goroutine exited
}

func newCoalescingConn(conn net.Conn) *coalescingConn {
	c := &coalescingConn{Conn: conn, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	c.space.L = &c.mu
	go c.writer()
	return c
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && !c.closed && len(c.buf) > 0 && len(c.buf)+len(p) > maxWriteBuffer {
		c.space.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *coalescingConn) writer() {
	defer close(c.stopped)
	for range c.wake {
		for {
			c.mu.Lock()
			if c.closed || c.err != nil || len(c.buf) == 0 {
				stop := c.closed || c.err != nil
				c.mu.Unlock()
				if stop {
					return
				}
				break
			}
			out := c.buf
			c.buf, c.spare = c.spare[:0], nil
			c.writing = true
			c.space.Broadcast()
			c.mu.Unlock()

			_, err := c.Conn.Write(out)

			c.mu.Lock()
			c.writing = false
			if cap(out) <= maxWriteBuffer {
				c.spare = out[:0]
			}
			if err != nil && c.err == nil {
				c.err = err
			}
			failed := c.err != nil
			c.space.Broadcast()
			c.mu.Unlock()
			if failed {
				_ = c.Conn.Close() // the reader fails: amqp091-go shuts down
				return
			}
		}
	}
}

// closeFlushTimeout bounds how long Close tries to write what is buffered
// (amqp091-go closes the socket after the close handshake, so normally
// nothing is; after an error nothing needs to be).
const closeFlushTimeout = 250 * time.Millisecond

// Close writes what is buffered (for at most closeFlushTimeout), then
// closes the connection and stops the writer.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	if c.err == nil && (len(c.buf) > 0 || c.writing) {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		for c.err == nil && (len(c.buf) > 0 || c.writing) {
			c.space.Wait()
		}
	}
	c.closed = true
	c.space.Broadcast()
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	err := c.Conn.Close()
	<-c.stopped
	return err
}
