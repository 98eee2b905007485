package kafka

import (
	"context"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

var (
	_ broker.HealthChecker = (*Broker)(nil)
	_ broker.BacklogReader = (*Broker)(nil)
)

// Check implements [broker.HealthChecker]: one round trip (an ApiVersions
// request through the admin client, to any broker of the cluster it
// knows) that must succeed before ctx is done. A cluster none of whose
// brokers answers gives "kafka: no broker of [host:9092] answers: ...".
func (b *Broker) Check(ctx context.Context) error {
	if b.isClosed() {
		return fmt.Errorf("kafka: check: %w", broker.ErrClosed)
	}
	if err := b.admCl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: no broker of %v answers: %w", b.cfg.Brokers, err)
	}
	return nil
}

// Backlog implements [broker.BacklogReader]: group's consumer lag on
// topic, per partition and in total, the partition's end offset (high
// watermark) less the group's committed offset. A partition where the
// group has committed nothing counts from where its consumers would start
// (Config.InitialOffset: everything on earliest, nothing on latest).
// Offsets are committed every Config.CommitInterval, so messages acked
// since the last commit still count; messages waiting in the group's retry
// topics for delayed redelivery do not. A missing topic has no backlog.
func (b *Broker) Backlog(ctx context.Context, topic, group string) (broker.Backlog, error) {
	if b.isClosed() {
		return broker.Backlog{}, fmt.Errorf("kafka: backlog of %q on %q: %w", group, topic, broker.ErrClosed)
	}
	positions, err := b.groupPositions(ctx, topic, group)
	if err != nil {
		return broker.Backlog{}, fmt.Errorf("kafka: backlog of %q on %q: %w", group, topic, err)
	}
	out := broker.Backlog{Partitions: make(map[int32]int64, len(positions))}
	for p, pos := range positions {
		lag := max(pos.end-pos.at, 0)
		out.Partitions[p] = lag
		out.Messages += lag
	}
	return out, nil
}
