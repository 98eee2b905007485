package idempotency_test

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pkg/idempotency"
)

// A claim is taken once; a second claim while it runs is told to come back
// later, and once completed the key is a duplicate.
func ExampleMemory() {
	store, err := idempotency.NewMemory(idempotency.MemoryConfig{MaxEntries: 1000, TTL: time.Hour})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	first, _ := store.Claim(ctx, "inventory/msg-1", time.Minute)
	second, _ := store.Claim(ctx, "inventory/msg-1", time.Minute)
	fmt.Println(first.State, second.State)
	_ = store.Complete(ctx, "inventory/msg-1", first.Token)
	again, _ := store.Claim(ctx, "inventory/msg-1", time.Minute)
	fmt.Println(again.State)
	// Output:
	// claimed in_progress
	// completed
}
