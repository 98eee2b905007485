package command_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
)

// racingStore lets another writer append to the stream right before each
// of the first `races` appends, as a concurrent command would.
type racingStore struct {
	eventstore.Store
	races   int
	appends atomic.Int32
}

func (s *racingStore) Append(ctx context.Context, id string, expected int, events ...event.Event) error {
	if int(s.appends.Add(1)) <= s.races {
		if err := s.Store.Append(ctx, id, eventstore.AnyVersion, itemAdded{CartID: id}); err != nil {
			return err
		}
	}
	return s.Store.Append(ctx, id, expected, events...)
}

func TestExecuteDecidesAgainOnTheNewVersion(t *testing.T) {
	ctx := context.Background()
	store := &racingStore{Store: eventstore.NewMemory(eventstore.Encoder{}), races: 2}
	repo := newRepo(t, store)
	var seen []int
	a, err := command.Execute(ctx, repo, "cart-1", func(a *eventstore.Aggregate[cart]) error {
		seen = append(seen, a.Version)
		a.Record(itemAdded{CartID: "cart-1"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Loaded at 0, lost to a writer; at 1, lost again; at 2, saved as 3.
	if len(seen) != 3 || seen[0] != 0 || seen[1] != 1 || seen[2] != 2 {
		t.Errorf("decided at versions %v, want [0 1 2]", seen)
	}
	if a.Version != 3 || a.State.Items != 3 {
		t.Errorf("saved at version %d with %d items, want 3 and 3", a.Version, a.State.Items)
	}
}

func TestExecuteGivesUpAfterConflictRetries(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		opts     []command.ExecuteOption
		attempts int
	}{
		{"default", nil, command.DefaultConflictRetries + 1},
		{"none", []command.ExecuteOption{command.ConflictRetries(0)}, 1},
		{"five", []command.ExecuteOption{command.ConflictRetries(5)}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &racingStore{Store: eventstore.NewMemory(eventstore.Encoder{}), races: 100}
			repo := newRepo(t, store)
			decided := 0
			_, err := command.Execute(ctx, repo, "hot", func(a *eventstore.Aggregate[cart]) error {
				decided++
				a.Record(itemAdded{CartID: "hot"})
				return nil
			}, tc.opts...)
			var ce *command.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, eventstore.ErrConcurrencyConflict) {
				t.Fatalf("err %v, want a ConflictError wrapping ErrConcurrencyConflict", err)
			}
			if ce.Attempts != tc.attempts || decided != tc.attempts || ce.StreamID != "hot" {
				t.Errorf("attempts %d, decided %d times, stream %q; want %d, %d, hot", ce.Attempts, decided, ce.StreamID, tc.attempts, tc.attempts)
			}
		})
	}
	repo := newRepo(t, eventstore.NewMemory(eventstore.Encoder{}))
	if _, err := command.Execute(ctx, repo, "x", func(*eventstore.Aggregate[cart]) error { return nil }, command.ConflictRetries(-1)); err == nil {
		t.Error("ConflictRetries(-1) accepted")
	}
}

func TestExecuteSavesNothingWhenDecideFails(t *testing.T) {
	ctx := context.Background()
	store := eventstore.NewMemory(eventstore.Encoder{})
	repo := newRepo(t, store)
	_, err := command.Execute(ctx, repo, "cart-1", func(a *eventstore.Aggregate[cart]) error {
		a.Record(itemAdded{CartID: "cart-1"})
		return command.Reject(errAlreadyPaid)
	})
	if !errors.Is(err, errAlreadyPaid) {
		t.Fatalf("err %v, want errAlreadyPaid", err)
	}
	if recs, _ := store.Load(ctx, "cart-1"); len(recs) != 0 {
		t.Errorf("%d events stored after a rejection, want 0", len(recs))
	}
}

// TestConflictsExhaustedTakeTheFailurePath: in a handler the ConflictError
// is transient: the runtime retries the command, then dead-letters it, and
// the waiting sender gets the ConflictError.
func TestConflictsExhaustedTakeTheFailurePath(t *testing.T) {
	svc := newService(t)
	bus := newBus(t, svc)
	store := &racingStore{Store: eventstore.NewMemory(eventstore.Encoder{}), races: 1000}
	repo := newRepo(t, store)
	if err := command.Handle(bus, "carts.add", command.OnAggregate(repo, decideAdd, command.ConflictRetries(1))); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	_, err := bus.SendAndWait(waitCtx(t), addItem{CartID: "hot"})
	var ce *command.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("send: %v, want a ConflictError", err)
	}
	eventually(t, "the dead letter", func() bool { return svc.Stats().DeadLettered == 1 })
	// quickRetries: 3 attempts of the handler, each deciding twice.
	if n := store.appends.Load(); n != 6 {
		t.Errorf("%d appends, want 6 (3 handler attempts x 2 decisions)", n)
	}
	if s := svc.Stats(); s.Retried != 2 {
		t.Errorf("retried %d, want 2", s.Retried)
	}
}

func TestOnAggregateRejectsACommandWithoutAggregateID(t *testing.T) {
	repo := newRepo(t, eventstore.NewMemory(eventstore.Encoder{}))
	err := command.OnAggregate(repo, decideAdd)(context.Background(), addItem{})
	if !command.IsRejected(err) {
		t.Fatalf("err %v, want a rejection", err)
	}
}
