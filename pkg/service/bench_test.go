package service_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// benchEvent is about 1 KiB of JSON, like cmd/switchyard-bench's event.
type benchEvent struct {
	ID     int    `json:"id"`
	Key    string `json:"key"`
	SentAt int64  `json:"sent_at"`
	Body   string `json:"body"`
}

func (benchEvent) EventType() string  { return "bench.event" }
func (benchEvent) EventVersion() int  { return 1 }
func (e benchEvent) EventKey() string { return e.Key }

type benchReply struct {
	ID int `json:"id"`
}

func (benchReply) EventType() string { return "bench.reply" }
func (benchReply) EventVersion() int { return 1 }

var benchBody = strings.Repeat("x", 1024-80)

var benchKeys = func() []string {
	k := make([]string, 64)
	for i := range k {
		k[i] = "key-" + strconv.Itoa(i)
	}
	return k
}()

// BenchmarkHandle publishes b.N events from one goroutine to a service with
// one typed handler on the memory broker, default policy (the full default
// middleware stack) and default concurrency; an op is one event published,
// decoded, handled and acked.
func BenchmarkHandle(b *testing.B) {
	benchHandled(b, func(svc *service.Service, handled func(int)) error {
		return service.Handle(svc, "bench", func(_ context.Context, e benchEvent) error {
			handled(1)
			return nil
		})
	})
}

// BenchmarkBatch compares HandleBatch with Handle on the memory broker, as
// BenchmarkHandle measures it: "noop" handlers cost nothing, so it shows
// what batching costs per event; "1ms-call" handlers make one 1ms call per
// invocation (a database round trip), per event for Handle and per batch
// for HandleBatch, at the default concurrency of 4 for both. The events
// have 64 keys and a batch holds one message of a key, so batches of the
// default size 100 never fill and each waits its 1ms window; size-64 ones
// fill.
func BenchmarkBatch(b *testing.B) {
	for _, cost := range []time.Duration{0, time.Millisecond} {
		call := func() {
			if cost > 0 {
				time.Sleep(cost)
			}
		}
		name := "noop"
		if cost > 0 {
			name = cost.String() + "-call"
		}
		b.Run("Handle/"+name, func(b *testing.B) {
			benchHandled(b, func(svc *service.Service, handled func(int)) error {
				return service.Handle(svc, "bench", func(_ context.Context, e benchEvent) error {
					call()
					handled(1)
					return nil
				})
			})
		})
		for _, size := range []int{service.DefaultBatchSize, len(benchKeys)} {
			b.Run(fmt.Sprintf("HandleBatch/%s/size-%d", name, size), func(b *testing.B) {
				benchHandled(b, func(svc *service.Service, handled func(int)) error {
					return service.HandleBatch(svc, "bench", func(_ context.Context, items []service.Item[benchEvent]) error {
						call()
						handled(len(items))
						return nil
					}, service.BatchSize(size), service.BatchWindow(time.Millisecond))
				})
			})
		}
	}
}

// benchHandled registers a handler with register, publishes b.N events
// from one goroutine, and waits until the handler reported them all
// through handled.
func benchHandled(b *testing.B, register func(svc *service.Service, handled func(n int)) error) {
	br, err := memory.New(memory.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	svc := service.New(br, service.WithSource("bench"))
	var count, want atomic.Int64
	done := make(chan struct{}, 1)
	err = register(svc, func(n int) {
		if c := count.Add(int64(n)); c >= want.Load() && c-int64(n) < want.Load() {
			done <- struct{}{}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	stop := runBench(b, svc)
	defer stop()

	ctx := context.Background()
	e := benchEvent{Body: benchBody}
	want.Store(int64(b.N))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e.ID, e.Key, e.SentAt = i, benchKeys[i%len(benchKeys)], time.Now().UnixNano()
		if err := svc.Publish(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("handled %d of %d", count.Load(), b.N)
	}
}

// BenchmarkNewMessage measures building a message outside and inside a
// handler (the inside case checks the declared types and continues the
// chain).
func BenchmarkNewMessage(b *testing.B) {
	br, err := memory.New(memory.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	svc := service.New(br, service.WithSource("bench"))
	if err := service.Handle(svc, "bench", func(context.Context, benchEvent) error { return nil },
		service.Publishes(benchReply{})); err != nil {
		b.Fatal(err)
	}
	e := benchEvent{Body: benchBody, Key: "k"}
	b.Run("outside", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for range b.N {
			if _, _, err := svc.NewMessage(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("in-handler", func(b *testing.B) {
		info := svc.Handlers()[0]
		d := &middleware.Delivery{Handler: &info}
		d.Envelope.ID, d.Envelope.CorrelationID = "parent", "corr"
		ctx := middleware.WithDelivery(context.Background(), d)
		b.ReportAllocs()
		for i := range b.N {
			if _, _, err := svc.NewMessage(ctx, benchReply{ID: i}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func runBench(b *testing.B, svc *service.Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-errc:
		cancel()
		b.Fatalf("Run: %v", err)
	}
	return func() {
		cancel()
		if err := <-errc; err != nil {
			b.Error(err)
		}
	}
}
