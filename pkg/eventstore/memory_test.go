package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/eventstore/eventstoretest"
)

func TestMemoryConformance(t *testing.T) {
	eventstoretest.Run(t, func(*testing.T) eventstore.Store { return eventstore.NewMemory(eventstore.Encoder{Source: "test"}) })
}

// ReadAll pages through every stream in append order by position.
func TestMemoryReadAll(t *testing.T) {
	ctx := context.Background()
	s := eventstore.NewMemory(eventstore.Encoder{})
	for _, a := range []struct{ stream string }{{"a"}, {"b"}, {"a"}} {
		if err := s.Append(ctx, a.stream, eventstore.AnyVersion, OrderPlaced{OrderID: a.stream}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var after int64
	for {
		recs, err := s.ReadAll(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%d:%s/%d", r.Position, r.StreamID, r.Version))
			after = r.Position
		}
	}
	if strings.Join(got, " ") != "1:a/1 2:b/1 3:a/2" {
		t.Fatalf("ReadAll pages: %v", got)
	}
	if _, err := s.ReadAll(ctx, 0, 0); err == nil {
		t.Fatal("ReadAll with limit 0 returned no error")
	}
}

func TestMemorySnapshotConformance(t *testing.T) {
	eventstoretest.RunSnapshots(t,
		func(*testing.T) eventstore.Store { return eventstore.NewMemory(eventstore.Encoder{}) },
		func(*testing.T) eventstore.SnapshotStore { return eventstore.NewMemorySnapshots() })
}

type countingReader struct {
	*eventstore.Memory
	reads atomic.Int32
}

func (c *countingReader) ReadAll(ctx context.Context, after int64, limit int, types ...string) ([]eventstore.Record, error) {
	c.reads.Add(1)
	return c.Memory.ReadAll(ctx, after, limit, types...)
}

// A closed wake channel (its listener stopped) leaves a caught-up
// subscription polling at its interval, not spinning on the closed channel.
func TestSubscriptionClosedWakePolls(t *testing.T) {
	src := &countingReader{Memory: eventstore.NewMemory(eventstore.Encoder{})}
	wake := make(chan struct{})
	close(wake)
	sub, err := eventstore.NewSubscription(src, 0, eventstore.SubscriptionConfig{PollInterval: 50 * time.Millisecond, Wake: wake})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := sub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next: %v", err)
	}
	if n := src.reads.Load(); n > 10 {
		t.Fatalf("%d reads in 200ms at a 50ms interval: spinning on the closed wake channel", n)
	}
}

func TestSubscriptionConfigValidates(t *testing.T) {
	_, err := eventstore.NewSubscription(eventstore.NewMemory(eventstore.Encoder{}), 0, eventstore.SubscriptionConfig{BatchSize: -1, PollInterval: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "batch_size: -1") || !strings.Contains(err.Error(), "poll_interval: -1s") {
		t.Fatalf("NewSubscription: %v, want both fields named", err)
	}
	if _, err := eventstore.NewSubscription(nil, 0, eventstore.SubscriptionConfig{}); err == nil {
		t.Fatal("a nil source was accepted")
	}
}

// afterReader records where each ReadAll starts.
type afterReader struct {
	*eventstore.Memory
	afters []int64
}

func (r *afterReader) ReadAll(ctx context.Context, after int64, limit int, types ...string) ([]eventstore.Record, error) {
	r.afters = append(r.afters, after)
	return r.Memory.ReadAll(ctx, after, limit, types...)
}

// A subscription to a rare type does not scan again, on every poll, the
// events of other types it already read past: once a short read showed
// everything up to the head, the next read starts at that head, not at the
// last record of its type. (Without it a caught-up projection of a rare
// type rescans the whole store tail every poll interval.)
func TestSubscriptionByTypeReadsOnFromTheHead(t *testing.T) {
	ctx := context.Background()
	src := &afterReader{Memory: eventstore.NewMemory(eventstore.Encoder{})}
	if err := src.Append(ctx, "o1", 0, OrderPaid{OrderID: "o1"}); err != nil { // position 1: the rare type
		t.Fatal(err)
	}
	for i := range 50 { // positions 2-51: others
		if err := src.Append(ctx, fmt.Sprintf("p%d", i), 0, OrderPlaced{OrderID: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := eventstore.NewSubscription(src, 0, eventstore.SubscriptionConfig{Types: []string{OrderPaid{}.EventType()}, BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := sub.Read(ctx); err != nil || len(recs) != 1 || recs[0].Position != 1 {
		t.Fatalf("first read: %v, %v; want the paid event at 1", recs, err)
	}
	if recs, err := sub.Read(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("second read: %v, %v; want nothing new", recs, err)
	}
	if err := src.Append(ctx, "o2", 0, OrderPaid{OrderID: "o2"}); err != nil { // position 52
		t.Fatal(err)
	}
	recs, err := sub.Read(ctx)
	if err != nil || len(recs) != 1 || recs[0].Position != 52 {
		t.Fatalf("third read: %v, %v; want the paid event at 52", recs, err)
	}
	if want := []int64{0, 51, 51}; !slices.Equal(src.afters, want) {
		t.Fatalf("reads started after %v, want %v: the caught-up reads rescanned what was already seen", src.afters, want)
	}
	if sub.Position() != 52 || sub.Lag() != 0 {
		t.Fatalf("position %d lag %d, want 52 and 0", sub.Position(), sub.Lag())
	}
	// SetPosition (a checkpoint moved back by a rebuild) reads from there again.
	sub.SetPosition(0)
	if recs, err := sub.Read(ctx); err != nil || len(recs) != 2 {
		t.Fatalf("after SetPosition(0): %v, %v; want both paid events again", recs, err)
	}
}
