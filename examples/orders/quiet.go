package main

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type snapshot = metrics.Snapshot

// idler is implemented by brokers that can tell when nothing is queued, in
// flight or delayed (the in-memory broker).
type idler interface{ Idle() bool }

// waitQuiet returns once every expected message was handled or
// dead-lettered and, for settle, the counts did not move and the broker (if
// it can tell) stayed idle. Waiting for the settle period after the counts
// are reached lets duplicates and stray messages show in the summary rather
// than arrive after it. It gives up after timeout.
func waitQuiet(ctx context.Context, svc *service.Service, b broker.Broker, want expected, settle, timeout time.Duration) error {
	idle, _ := b.(idler)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var (
		last  snapshot
		since time.Time
	)
	for {
		s := svc.Stats()
		reached := s.Published >= want.published && s.Handled >= want.handled && s.DeadLettered >= want.deadLettered
		quiet := reached && s == last && (idle == nil || idle.Idle())
		switch {
		case !quiet:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		}
		if quiet && time.Since(since) >= settle {
			return nil
		}
		last = s
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			brokerIdle := "unknown"
			if idle != nil {
				brokerIdle = fmt.Sprint(idle.Idle())
			}
			return fmt.Errorf("timed out after %s waiting for the flow to finish: handled %d of %d, dead-lettered %d of %d, published %d of %d, broker idle: %s",
				timeout, s.Handled, want.handled, s.DeadLettered, want.deadLettered, s.Published, want.published, brokerIdle)
		}
	}
}
