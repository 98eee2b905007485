package kafka

import (
	"context"
	"fmt"
	"time"
)

// WaitGroup waits until consumer group group is stable with exactly
// members members, or ctx is done. A member joining or leaving makes Kafka
// rebalance the group, and records in flight then are redelivered (at least
// once): tests that count deliveries across competing consumers, such as
// package conformance, wait for the group to settle before they publish.
// Each Subscribe call is one member.
func (b *Broker) WaitGroup(ctx context.Context, group string, members int) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "not described yet"
	for {
		gs, err := b.adm.DescribeGroups(ctx, group)
		switch g, ok := gs[group]; {
		case err != nil && ctx.Err() != nil:
			// Cut short by the deadline: keep what the last answer said.
		case err != nil:
			last = err.Error()
		case !ok:
			last = "not found"
		case g.Err != nil:
			last = g.Err.Error()
		case g.State == "Stable" && len(g.Members) == members:
			return nil
		default:
			last = fmt.Sprintf("%s with %d members", g.State, len(g.Members))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("kafka: group %q not stable with %d members (last: %s): %w", group, members, last, ctx.Err())
		}
	}
}
