package eventstore_test

import (
	"context"
	"errors"
	"fmt"
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
