package park_test

import (
	"context"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/park"
)

func TestMemoryParksOnceAndReleases(t *testing.T) {
	ctx := context.Background()
	m := park.NewMemory()
	if first, err := m.Park(ctx, "g", "k", "m1"); err != nil || first != "m1" {
		t.Fatalf("Park = %q, %v", first, err)
	}
	if first, _ := m.Park(ctx, "g", "k", "m2"); first != "m1" {
		t.Errorf("second Park = %q: a parked key stays behind its first dead letter", first)
	}
	if id, ok, _ := m.Lookup(ctx, "g", "k"); !ok || id != "m1" {
		t.Errorf("Lookup = %q, %v", id, ok)
	}
	if _, ok, _ := m.Lookup(ctx, "other", "k"); ok {
		t.Error("a key is parked per group")
	}
	if l, _ := m.List(ctx, "g"); len(l) != 1 || l[0].MessageID != "m1" {
		t.Errorf("List = %+v", l)
	}
	if err := m.Release(ctx, "g", "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := m.Lookup(ctx, "g", "k"); ok {
		t.Error("released key still parked")
	}
}
