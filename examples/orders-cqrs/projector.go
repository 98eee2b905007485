package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/eventstore"
)

// readModel is the orderSummaries read model: a summary table filled from
// the event store's global stream, from its checkpoint on.
type readModel struct {
	name  string
	table summaryTable
	src   eventstore.AllReader
	dec   *eventstore.Decoder

	mu       sync.Mutex // one batch or rebuild at a time
	target   string
	gen      int
	position int64
}

func newReadModel(name string, table summaryTable, src eventstore.AllReader, dec *eventstore.Decoder) *readModel {
	return &readModel{name: name, table: table, src: src, dec: dec}
}

// Run follows the store until ctx ends.
func (r *readModel) Run(ctx context.Context) error {
	for {
		n, err := r.step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if n == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

func (r *readModel) ensure(ctx context.Context) error {
	if r.target != "" {
		return nil
	}
	r.gen = 1
	r.target = fmt.Sprintf("%s_v%d", r.name, r.gen)
	return r.table.create(ctx, r.target)
}

func (r *readModel) step(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ensure(ctx); err != nil {
		return 0, err
	}
	n, pos, err := r.fill(ctx, r.target, r.position)
	r.position = pos
	return n, err
}

func (r *readModel) fill(ctx context.Context, target string, after int64) (int, int64, error) {
	recs, err := r.src.ReadAll(ctx, after, 100)
	if err != nil {
		return 0, after, err
	}
	for _, rec := range recs {
		e, err := r.dec.Decode(rec)
		if err != nil {
			return 0, after, err
		}
		if err := r.table.apply(ctx, target, rec.Envelope, e); err != nil {
			return 0, after, err
		}
		after = rec.Position
	}
	return len(recs), after, nil
}

// Rebuild replays every event into a new target and switches readers to
// it.
func (r *readModel) Rebuild(ctx context.Context) (RebuildResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ensure(ctx); err != nil {
		return RebuildResult{}, err
	}
	next := fmt.Sprintf("%s_v%d", r.name, r.gen+1)
	if err := r.table.create(ctx, next); err != nil {
		return RebuildResult{}, err
	}
	var pos int64
	for {
		n, p, err := r.fill(ctx, next, pos)
		if err != nil {
			return RebuildResult{}, err
		}
		pos = p
		if n == 0 {
			break
		}
	}
	old := r.target
	r.target, r.gen, r.position = next, r.gen+1, pos
	return RebuildResult{From: old, To: next, Position: pos}, r.table.drop(ctx, old)
}

// RebuildResult says what a rebuild did.
type RebuildResult struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Position int64  `json:"position"`
}

// Get reads an order's summary.
func (r *readModel) Get(ctx context.Context, id string) (Summary, bool, error) {
	r.mu.Lock()
	target := r.target
	r.mu.Unlock()
	if target == "" {
		return Summary{}, false, nil
	}
	return r.table.get(ctx, target, id)
}
