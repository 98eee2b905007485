package service

import (
	"context"
	"log/slog"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/park"
)

// staleList returns what the store held before hook ran: a refresh that
// read the store just before a park.
type staleList struct {
	*park.Memory
	hook func()
}

func (s *staleList) List(ctx context.Context, group string) ([]park.Key, error) {
	before, err := s.Memory.List(ctx, group)
	if s.hook != nil {
		s.hook()
	}
	return before, err
}

// A refresh whose list predates a park this process just made must not
// drop that key from the cache: the next message of the key would then be
// handled ahead of its dead letter.
func TestRefreshKeepsAParkMadeWhileListing(t *testing.T) {
	store := &staleList{Memory: park.NewMemory()}
	p := &parking{store: store, group: "g", logger: slog.New(slog.DiscardHandler), keys: map[string]parked{}}
	ctx := context.Background()
	store.hook = func() {
		if err := p.park(ctx, "k", "m1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.load(ctx); err != nil {
		t.Fatal(err)
	}
	first, isParked, head, err := p.check(ctx, "k", "m2")
	if err != nil || !isParked || head || first != "m1" {
		t.Fatalf("check after a racing refresh = %q, parked %v, head %v, %v; want parked behind m1", first, isParked, head, err)
	}
}
