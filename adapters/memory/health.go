package memory

import (
	"context"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

var (
	_ broker.HealthChecker = (*Broker)(nil)
	_ broker.BacklogReader = (*Broker)(nil)
)

// Check implements [broker.HealthChecker]: the in-memory broker is in the
// process, so it is healthy until [Broker.Close] (then an error wrapping
// [broker.ErrClosed]).
func (b *Broker) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: check: %w", err)
	}
	if b.closed.Load() {
		return fmt.Errorf("memory: check: %w", broker.ErrClosed)
	}
	return nil
}

// Backlog implements [broker.BacklogReader]: the messages group's queue on
// topic holds and has not handed out, counting those waiting for
// redelivery (after a Nack backoff or a [Broker.Delay]) and not those
// handed out and not acked yet. A topic no group registered for yet
// counts what it keeps for the first group; an unknown topic or group has
// no backlog.
func (b *Broker) Backlog(ctx context.Context, topicName, group string) (broker.Backlog, error) {
	if err := ctx.Err(); err != nil {
		return broker.Backlog{}, fmt.Errorf("memory: backlog of %q on %q: %w", group, topicName, err)
	}
	if b.closed.Load() {
		return broker.Backlog{}, fmt.Errorf("memory: backlog of %q on %q: %w", group, topicName, broker.ErrClosed)
	}
	b.mu.RLock()
	t, ok := b.topics[topicName]
	b.mu.RUnlock()
	if !ok {
		return broker.Backlog{}, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.order) == 0 {
		return broker.Backlog{Messages: int64(t.backlog.len())}, nil
	}
	q, ok := t.groups[group]
	if !ok {
		return broker.Backlog{}, nil
	}
	return broker.Backlog{Messages: int64(q.queued + q.delayed)}, nil
}
