package command_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
)

func newPostgresStore(t *testing.T) *postgres.EventStore {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), brokertest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var b [6]byte
	_, _ = rand.Read(b[:])
	es, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{Table: "command_events_" + hex.EncodeToString(b[:])})
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE `+es.Table()) })
	return es
}

// racingDecisions runs two Executes on one aggregate of the real
// PostgreSQL store, both loading the same version before either saves, and
// returns each one's error and the versions each decided on.
func racingDecisions(t *testing.T, repo *eventstore.Repository[cart], id string, decide func(*eventstore.Aggregate[cart]) error) ([2]error, [2][]int) {
	t.Helper()
	var (
		loaded   sync.WaitGroup // both decided on their first load
		wg       sync.WaitGroup
		errs     [2]error
		versions [2][]int
	)
	loaded.Add(2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = command.Execute(context.Background(), repo, id, func(a *eventstore.Aggregate[cart]) error {
				versions[i] = append(versions[i], a.Version)
				if len(versions[i]) == 1 {
					loaded.Done()
					loaded.Wait() // the other has loaded the same version: one save must lose
				}
				return decide(a)
			})
		}()
	}
	wg.Wait()
	return errs, versions
}

// TestConcurrentCommandsOnPostgres: two commands decided on the same
// version of one aggregate: one saves, the other meets the conflict,
// decides again on the new version and succeeds (adding an item) or is
// rejected by the rule (paying twice).
func TestConcurrentCommandsOnPostgres(t *testing.T) {
	es := newPostgresStore(t)
	repo := newRepo(t, es)
	ctx := context.Background()
	if err := es.Append(ctx, "cart-1", 0, itemAdded{CartID: "cart-1"}); err != nil {
		t.Fatal(err)
	}

	t.Run("both succeed", func(t *testing.T) {
		errs, versions := racingDecisions(t, repo, "cart-1", func(a *eventstore.Aggregate[cart]) error {
			return decideAdd(a, addItem{CartID: "cart-1"})
		})
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("errors %v, want both to succeed", errs)
		}
		retried := 0
		for i, v := range versions {
			switch {
			case len(v) == 1 && v[0] == 1:
			case len(v) == 2 && v[0] == 1 && v[1] == 2:
				retried++
			default:
				t.Errorf("writer %d decided at versions %v, want [1] or [1 2]", i, v)
			}
		}
		if retried != 1 {
			t.Errorf("%d writers retried, want exactly 1: versions %v", retried, versions)
		}
		a, err := repo.Load(ctx, "cart-1")
		if err != nil {
			t.Fatal(err)
		}
		if a.Version != 3 || a.State.Items != 3 {
			t.Errorf("stream at version %d with %d items, want 3 and 3", a.Version, a.State.Items)
		}
	})

	t.Run("the rule decides the second", func(t *testing.T) {
		errs, versions := racingDecisions(t, repo, "cart-1", func(a *eventstore.Aggregate[cart]) error {
			return decidePay(a, payCart{CartID: "cart-1"})
		})
		won, rejected := 0, 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case command.IsRejected(err) && errors.Is(err, errAlreadyPaid) && len(versions[i]) == 2 && versions[i][1] == 4:
				rejected++
			default:
				t.Errorf("writer %d: %v after deciding at %v", i, err, versions[i])
			}
		}
		if won != 1 || rejected != 1 {
			t.Fatalf("%d paid and %d were rejected on the new version, want 1 and 1 (errors %v, versions %v)", won, rejected, errs, versions)
		}
		recs, err := es.Load(ctx, "cart-1")
		if err != nil {
			t.Fatal(err)
		}
		paid := 0
		for _, r := range recs {
			if r.Type() == (cartPaid{}).EventType() {
				paid++
			}
		}
		if paid != 1 || len(recs) != 4 {
			t.Errorf("%d events with %d payments, want 4 and 1", len(recs), paid)
		}
	})
}
