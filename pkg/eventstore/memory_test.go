package eventstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
