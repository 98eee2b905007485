// Package sagatest checks that a [saga.Store] keeps the contract the saga
// runtime relies on: versions, conflicts, pending messages, applied ids.
package sagatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/saga"
)

// Run runs the store contract against a fresh store from newStore; name
// makes its saga names unique so that a shared database can be used.
func Run(t *testing.T, name string, newStore func(t *testing.T) saga.Store) {
	ctx := context.Background()
	t.Run("versions", func(t *testing.T) {
		s := newStore(t)
		sg := name + "-versions"
		if r, err := s.Load(ctx, sg, "a"); err != nil || r.Version != 0 {
			t.Fatalf("Load of a missing instance: %+v, %v; want version 0", r, err)
		}
		v1 := saga.Record{State: []byte(`{"n":1}`), Version: 1, Applied: []string{"m1"}, Pending: []byte(`[1]`)}
		if err := s.Save(ctx, sg, "a", v1); err != nil {
			t.Fatalf("first save: %v", err)
		}
		if err := s.Save(ctx, sg, "a", v1); !errors.Is(err, saga.ErrConflict) {
			t.Fatalf("second save of version 1: %v, want ErrConflict", err)
		}
		if err := s.Save(ctx, sg, "a", saga.Record{State: []byte(`{}`), Version: 3}); !errors.Is(err, saga.ErrConflict) {
			t.Fatalf("save of version 3 over 1: %v, want ErrConflict", err)
		}
		got, err := s.Load(ctx, sg, "a")
		if err != nil || got.Version != 1 || string(got.State) != `{"n":1}` || !slices.Equal(got.Applied, []string{"m1"}) || string(got.Pending) != `[1]` {
			t.Fatalf("Load: %+v, %v; want what was saved", got, err)
		}
		if err := s.ClearPending(ctx, sg, "a", 0); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Load(ctx, sg, "a"); got.Pending == nil {
			t.Fatal("ClearPending of an older version cleared the pending messages")
		}
		if err := s.ClearPending(ctx, sg, "a", 1); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Load(ctx, sg, "a"); got.Pending != nil {
			t.Fatalf("ClearPending left %q", got.Pending)
		}
		v2 := saga.Record{State: []byte(`{"n":2}`), Version: 2, Completed: true, Applied: []string{"m1", "m2"}}
		if err := s.Save(ctx, sg, "a", v2); err != nil {
			t.Fatalf("save of version 2 over 1: %v", err)
		}
		if got, _ := s.Load(ctx, sg, "a"); got.Version != 2 || !got.Completed {
			t.Fatalf("Load: %+v, want version 2, completed", got)
		}
		if r, _ := s.Load(ctx, sg+"-other", "a"); r.Version != 0 {
			t.Fatal("instances of another saga with the same id are shared")
		}
	})
	t.Run("one of racing saves wins", func(t *testing.T) {
		s := newStore(t)
		sg := name + "-race"
		const racers = 8
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Save(ctx, sg, "x", saga.Record{State: []byte(fmt.Sprintf(`{"by":%d}`, i)), Version: 1})
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, saga.ErrConflict):
				t.Errorf("racing save: %v, want nil or ErrConflict", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d racing saves of version 1 succeeded, want exactly 1", won)
		}
	})
}
