//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// producer publishes Ticks 0..n-1 with deterministic ids, in batches, from
// several goroutines, at most rate messages a second. A batch whose publish
// fails (broker restarting, connection lost, confirm timeout) is published
// again, the same ids, until the broker confirms it or giveUp passes: the
// producer's side of at-least-once. Only confirmed ids count as published;
// a batch that failed may still have been stored, and is then delivered
// twice (a duplicate, never a loss).
type producer struct {
	svc     *service.Service // builds messages (namespace, envelope)
	pub     message.Publisher
	ns      string
	n       int
	batch   int
	workers int
	keys    int           // Tick.Keys
	rate    float64       // messages per second; 0 means as fast as confirms allow
	giveUp  time.Duration // per batch
	logger  *slog.Logger

	// stopping, when closed, ends the stream early: no batch starts after
	// it, and run returns nil once the batches under way are confirmed.
	// Scenarios that stream for as long as their faults last use it.
	stopping chan struct{}
	stopOnce sync.Once

	// onConfirm, when set, is called after every confirmed batch (the
	// cluster scenarios time the producer's progress with it).
	onConfirm func()

	confirmed *idSet
	sent      atomic.Int64 // messages confirmed, for progress
	retries   atomic.Int64 // failed Publish calls
}

func newProducer(svc *service.Service, pub message.Publisher, ns string, n int, rate float64, logger *slog.Logger) *producer {
	return &producer{
		svc: svc, pub: pub, ns: ns, n: n, batch: 50, workers: 4, rate: rate,
		giveUp: 3 * time.Minute, logger: logger, confirmed: newIDSet(), stopping: make(chan struct{}),
	}
}

// stop ends the stream after the batches under way (see stopping).
func (p *producer) stop() { p.stopOnce.Do(func() { close(p.stopping) }) }

// run publishes every message and returns nil once all are confirmed.
func (p *producer) run(ctx context.Context) error {
	starts := make(chan int)
	go func() {
		defer close(starts)
		var tick *time.Ticker
		if p.rate > 0 {
			tick = time.NewTicker(time.Duration(float64(time.Second) * float64(p.batch) / p.rate))
			defer tick.Stop()
		}
		for i := 0; i < p.n; i += p.batch {
			if tick != nil {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				case <-p.stopping:
					return
				}
			}
			select {
			case starts <- i:
			case <-ctx.Done():
				return
			case <-p.stopping:
				return
			}
		}
	}()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range starts {
				if err := p.publishBatch(ctx, i, min(i+p.batch, p.n)); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func (p *producer) publishBatch(ctx context.Context, from, to int) error {
	msgs := make([]*message.Message, 0, to-from)
	var topic string
	for seq := from; seq < to; seq++ {
		m, t, err := p.svc.NewMessage(ctx, Tick{Seq: seq, Keys: p.keys}, service.WithID(msgID(p.ns, seq)))
		if err != nil {
			return err
		}
		msgs, topic = append(msgs, m), t
	}
	var failingSince, lastLog time.Time
	for {
		copies := make([]*message.Message, len(msgs))
		for i, m := range msgs {
			copies[i] = m.Copy()
		}
		err := p.pub.Publish(topic, copies...)
		if err == nil {
			for _, m := range msgs {
				p.confirmed.add(m.UUID)
			}
			p.sent.Add(int64(len(msgs)))
			if p.onConfirm != nil {
				p.onConfirm()
			}
			if !failingSince.IsZero() {
				p.logger.Info("publish recovered", "after", time.Since(failingSince).Round(time.Millisecond), "batch", from)
			}
			return nil
		}
		p.retries.Add(1)
		now := time.Now()
		if failingSince.IsZero() {
			failingSince = now
		}
		if now.Sub(lastLog) > 10*time.Second {
			p.logger.Warn("publish failed, retrying the batch", "batch", from, "err", err)
			lastLog = now
		}
		if now.Sub(failingSince) > p.giveUp {
			return fmt.Errorf("faults: batch %d unconfirmed for %s: %w", from, p.giveUp, err)
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
