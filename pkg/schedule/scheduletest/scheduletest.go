// Package scheduletest checks that a [schedule.Store] keeps the contract
// the scheduler relies on: never early, one claim at a time, leases,
// cancel of what is not claimed.
package scheduletest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Run runs the contract on fresh stores from newStore.
func Run(t *testing.T, newStore func(t *testing.T) schedule.Store) {
	ctx := context.Background()
	entry := func(id string, due time.Time) schedule.Entry {
		m := message.NewMessage(id, []byte(`{"id":"`+id+`"}`))
		m.Metadata.Set("ce_type", "test.tick")
		return schedule.Entry{ID: id, Topic: "topic-" + id, Message: m, Due: due}
	}
	ids := func(es []schedule.Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	t.Run("due claim done", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		for _, e := range []schedule.Entry{entry("late", now.Add(time.Hour)), entry("b", now.Add(-time.Second)), entry("a", now.Add(-2*time.Second))} {
			if err := s.Add(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Add(ctx, entry("a", now.Add(time.Hour))); err != nil { // same id: kept as it was
			t.Fatal(err)
		}
		got, err := s.Claim(ctx, now, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(got)) != "[a b]" {
			t.Fatalf("Claim: %v, want [a b] (due ones, earliest first; not the one due in an hour)", ids(got))
		}
		if got[0].Topic != "topic-a" || string(got[0].Message.Payload) != `{"id":"a"}` || got[0].Message.Metadata.Get("ce_type") != "test.tick" || got[0].Message.UUID != "a" {
			t.Fatalf("claimed entry %+v lost its topic, payload, metadata or id", got[0])
		}
		if again, _ := s.Claim(ctx, now, 10, time.Minute); len(again) != 0 {
			t.Fatalf("a second Claim took %v, which the first holds", ids(again))
		}
		if err := s.Cancel(ctx, "a"); !errors.Is(err, service.ErrScheduleNotFound) {
			t.Fatalf("Cancel of a claimed entry: %v, want ErrScheduleNotFound", err)
		}
		if err := s.Done(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if again, _ := s.Claim(ctx, now, 10, time.Minute); fmt.Sprint(ids(again)) != "[b]" {
			t.Fatalf("Claim after Done(a) and Release(b): %v, want [b]", ids(again))
		}
		if got, _ := s.Claim(ctx, now.Add(2*time.Hour), 10, time.Minute); fmt.Sprint(ids(got)) != "[late]" {
			t.Fatalf("Claim two hours later: %v, want [late]", ids(got))
		}
	})
	t.Run("cancel", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		if err := s.Add(ctx, entry("c", now.Add(-time.Second))); err != nil {
			t.Fatal(err)
		}
		if err := s.Cancel(ctx, "c"); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		if err := s.Cancel(ctx, "c"); !errors.Is(err, service.ErrScheduleNotFound) {
			t.Fatalf("second Cancel: %v, want ErrScheduleNotFound", err)
		}
		if got, _ := s.Claim(ctx, now, 10, time.Minute); len(got) != 0 {
			t.Fatalf("cancelled entry claimed: %v", ids(got))
		}
	})
	t.Run("expired lease is taken over", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		if err := s.Add(ctx, entry("l", now.Add(-time.Second))); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Claim(ctx, now, 10, 50*time.Millisecond); len(got) != 1 {
			t.Fatalf("Claim: %v", ids(got))
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := s.Claim(ctx, time.Now(), 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("entry of a dead claim (lease 50ms) not claimable after 10s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("concurrent claims take each entry once", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		const n = 40
		for i := range n {
			if err := s.Add(ctx, entry(fmt.Sprintf("e%02d", i), now.Add(-time.Second))); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu   sync.Mutex
			seen = map[string]int{}
			wg   sync.WaitGroup
		)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := s.Claim(ctx, now, 3, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, e := range got {
						seen[e.ID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Errorf("claimed %d distinct entries, want %d", len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("%s claimed %d times", id, c)
			}
		}
	})
}
