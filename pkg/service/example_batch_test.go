package service_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// A batch handler fails one item of its first batch: only that item comes
// back, in a batch of its own, and succeeds.
func ExampleHandleBatch() {
	b, _ := memory.New(memory.Config{}, nil)
	defer b.Close()
	svc := service.New(b)
	failedOnce := false
	done := make(chan struct{})
	_ = service.HandleBatch(svc, "sink", func(_ context.Context, batch []service.Item[tick]) error {
		var seqs []int
		failed := service.BatchErrors{}
		for _, it := range batch {
			seqs = append(seqs, it.Event.Seq)
			if it.Event.Seq == 2 && !failedOnce {
				failedOnce = true
				failed[it.ID] = errors.New("row locked")
			}
		}
		slices.Sort(seqs)
		fmt.Println("batch", seqs, "failed", len(failed))
		if len(batch) == 1 {
			close(done)
		}
		return failed
	}, service.BatchSize(3), service.BatchWindow(10*time.Millisecond),
		service.Retry(retry.Policy{InitialInterval: time.Millisecond, Jitter: retry.NoJitter}))

	for i := 1; i <= 3; i++ {
		_ = svc.Publish(context.Background(), tick{Key: fmt.Sprint("k", i), Seq: i})
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- svc.Run(ctx) }()
	<-done
	stop()
	<-ran
	// Output:
	// batch [1 2 3] failed 1
	// batch [2] failed 0
}
