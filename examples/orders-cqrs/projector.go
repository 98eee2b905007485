package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/projection"
)

// readModel is the orderSummaries read model: a summary table filled by a
// projection that follows the event store's global stream from its
// checkpoint, and that a rebuild refills from position zero.
type readModel struct {
	name  string
	table summaryTable
	proj  *projection.Projection
	src   eventstore.AllReader
}

// newReadModel builds the projection. wake, fed by this process's
// appends, makes a caught-up projection read at once instead of at its
// next poll: a client waiting to read its own write waits less.
func newReadModel(name string, table summaryTable, checkpoints projection.Store, src eventstore.AllReader, dec *eventstore.Decoder, wake <-chan struct{}) (*readModel, error) {
	p, err := projection.New(name, checkpoints, dec,
		projection.WithSetup(table.create),
		// Readers look the live target up, so the old one can go in the
		// unit of work that switches them.
		projection.WithSwitch(func(ctx context.Context, from, _ string) error {
			if from == "" { // the first target: nothing to drop
				return nil
			}
			return table.drop(ctx, from)
		}),
		projection.WithPollInterval(100*time.Millisecond),
		projection.WithWake(wake),
	)
	if err != nil {
		return nil, err
	}
	r := &readModel{name: name, table: table, proj: p, src: src}
	return r, errors.Join(
		projection.Handle(p, r.onPlaced),
		projection.Handle(p, r.onPaid),
		projection.Handle(p, r.onShipped),
	)
}

func (r *readModel) onPlaced(ctx context.Context, e OrderPlaced) error   { return r.apply(ctx, e) }
func (r *readModel) onPaid(ctx context.Context, e OrderPaid) error       { return r.apply(ctx, e) }
func (r *readModel) onShipped(ctx context.Context, e OrderShipped) error { return r.apply(ctx, e) }

func (r *readModel) apply(ctx context.Context, e event.Event) error {
	return r.table.apply(ctx, projection.Target(ctx), projection.Envelope(ctx), e)
}

// Run follows the store until ctx ends.
func (r *readModel) Run(ctx context.Context) error { return r.proj.Run(ctx, r.src) }

// RebuildResult says what a rebuild did.
type RebuildResult struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Position int64  `json:"position"`
}

// Rebuild replays every event into a new table while the live one keeps
// serving, then switches readers to it (see projection.Projection.Rebuild).
func (r *readModel) Rebuild(ctx context.Context) (RebuildResult, error) {
	from, err := r.proj.Target(ctx)
	if err != nil {
		return RebuildResult{}, err
	}
	if err := r.proj.Rebuild(ctx, r.src); err != nil {
		return RebuildResult{}, err
	}
	to, err := r.proj.Target(ctx)
	if err != nil {
		return RebuildResult{}, err
	}
	return RebuildResult{From: from, To: to, Position: r.proj.Status().Position}, nil
}

// Get reads an order's summary from the live table.
func (r *readModel) Get(ctx context.Context, id string) (Summary, bool, error) {
	target := r.proj.Status().Target // no I/O; empty until the projection first ran here
	if target == "" {
		t, err := r.proj.Target(ctx)
		if err != nil {
			return Summary{}, false, err
		}
		target = t
	}
	s, ok, err := r.table.get(ctx, target, id)
	if err == nil {
		return s, ok, nil
	}
	// The table may have been dropped by a rebuild's switch (in another
	// process, say) since this process last looked: ask once more.
	now, terr := r.proj.Target(ctx)
	if terr != nil || now == target {
		return Summary{}, false, fmt.Errorf("reading %s: %w", target, err)
	}
	return r.table.get(ctx, now, id)
}
