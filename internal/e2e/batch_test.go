package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest/conformance"
)

// batchRecord is what a batch handler of a scenario saw.
type batchRecord struct {
	mu       sync.Mutex
	batches  [][]step
	attempts map[int]int      // by seq
	okByKey  map[string][]int // seqs handled successfully, in order
}

func newBatchRecord() *batchRecord {
	return &batchRecord{attempts: map[int]int{}, okByKey: map[string][]int{}}
}

// batchPartialFailure: a batch handler on every broker, 30 steps over 6
// keys in batches of up to 10. Some steps fail their first attempt, one
// fails every attempt. Only the failed items are handed to the handler
// again (counted per step), the poison step is dead-lettered after its 4
// attempts with the failure metadata, read back from the broker, and each
// key's steps succeed in publish order, no batch holding two of a key.
func batchPartialFailure(t *testing.T, e *conformance.Env) {
	const name, n, keys, poison = "batch-sink", 30, 6, 17
	transient := func(seq int) bool { return seq%7 == 2 }
	rec := newBatchRecord()
	in := e.Start(func(s *service.Service) error {
		return service.HandleBatch(s, name, func(_ context.Context, items []service.Item[step]) error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			failed := service.BatchErrors{}
			var batch []step
			for _, it := range items {
				st := it.Event
				batch = append(batch, st)
				rec.attempts[st.Seq]++
				switch {
				case st.Seq == poison:
					failed[it.ID] = fmt.Errorf("step %d: rejected downstream", st.Seq)
				case transient(st.Seq) && rec.attempts[st.Seq] == 1:
					failed[it.ID] = errors.New("downstream busy")
				default:
					rec.okByKey[st.Key] = append(rec.okByKey[st.Key], st.Seq)
				}
			}
			rec.batches = append(rec.batches, batch)
			return failed
		}, service.BatchSize(10), service.BatchWindow(200*time.Millisecond))
	})
	p, _ := in.Svc.PolicyOf(name)
	dlq := e.Inspect(strings.TrimPrefix(p.DeadLetterTopic, e.Namespace))
	e.SettleGroups(in, 1)
	for i := range n {
		if err := in.Svc.Publish(context.Background(), step{Key: fmt.Sprintf("k%d", i%keys), Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	dl := dlq.Wait("the poison step's dead letter", func(m *message.Message) bool {
		return strings.Contains(string(m.Payload), fmt.Sprintf(`"seq":%d`, poison))
	})
	e.Eventually("every other step handled", func() bool { return e.Probe.Counts(name).Handled == n-1 })
	e.Quiet()

	for k, want := range map[string]string{
		header.DeadLetterReason:   string(failure.ReasonRetriesExhausted),
		header.DeadLetterHandler:  name,
		header.DeadLetterAttempts: "4",
	} {
		if got := dl.Metadata[k]; got != want {
			t.Errorf("dead letter %s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(dl.Metadata[header.DeadLetterError], "rejected downstream") {
		t.Errorf("dead letter error %q, want the item's own error", dl.Metadata[header.DeadLetterError])
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	largest := 0
	for _, b := range rec.batches {
		largest = max(largest, len(b))
		seen := map[string]bool{}
		for _, st := range b {
			if seen[st.Key] {
				t.Errorf("a batch holds two steps of key %s: %v", st.Key, b)
			}
			seen[st.Key] = true
		}
	}
	for seq := range n {
		want := 1
		switch {
		case seq == poison:
			want = 4
		case transient(seq):
			want = 2
		}
		if got := rec.attempts[seq]; got != want {
			t.Errorf("step %d handed to the handler %d times, want %d", seq, got, want)
		}
	}
	for k, seqs := range rec.okByKey {
		if !slices.IsSorted(seqs) {
			t.Errorf("key %s succeeded in order %v, want publish order", k, seqs)
		}
	}
	if largest < 2 {
		t.Errorf("largest batch %d: nothing was batched", largest)
	}
	if c := e.Probe.Counts(name); c.DeadLettered != 1 || c.Nacked != 0 {
		t.Errorf("counts %+v, want one dead letter and nothing nacked", c)
	}
	t.Logf("%s: %d batches, largest %d", e.BrokerName, len(rec.batches), largest)
}

// batchShutdownMidBatch: an instance stopped while its handler holds a
// batch finishes that batch and acks it; what it had not started goes back
// to the broker, and a second instance handles it: every step is handled
// exactly once.
func batchShutdownMidBatch(t *testing.T, e *conformance.Env) {
	const name, n = "batch-sink", 15
	var (
		mu      sync.Mutex
		handled = map[int]int{}
		entered = make(chan struct{})
		release = make(chan struct{})
		once    sync.Once
	)
	define := func(hold bool, window time.Duration) func(*service.Service) error {
		return func(s *service.Service) error {
			return service.HandleBatch(s, name, func(_ context.Context, items []service.Item[step]) error {
				if hold {
					once.Do(func() { close(entered); <-release })
				}
				mu.Lock()
				defer mu.Unlock()
				for _, it := range items {
					handled[it.Event.Seq]++
				}
				return nil
			}, service.Concurrency(1), service.BatchSize(5), service.BatchWindow(window))
		}
	}
	first := e.Start(define(true, time.Hour))
	e.SettleGroups(first, 1)
	for i := range n {
		if err := first.Svc.Publish(context.Background(), step{Key: fmt.Sprintf("k%d", i), Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-entered:
	case <-time.After(e.Suite.Timeout):
		t.Fatalf("no batch handled within %s", e.Suite.Timeout)
	}
	first.BeginStop()
	close(release)
	if err := first.Stop(); err != nil {
		t.Fatalf("first instance: %v", err)
	}
	mu.Lock()
	byFirst := len(handled)
	mu.Unlock()
	if c := e.Probe.Counts(name); c.Handled != byFirst || c.DeadLettered != 0 {
		t.Fatalf("first instance: counts %+v, %d handled by the handler", c, byFirst)
	}

	second := e.Start(define(false, 50*time.Millisecond))
	e.SettleGroups(second, 1)
	e.Eventually("every step handled", func() bool { return e.Probe.Counts(name).Handled == n })
	e.Quiet()
	mu.Lock()
	defer mu.Unlock()
	for seq := range n {
		if handled[seq] != 1 {
			t.Errorf("step %d handled %d times, want once", seq, handled[seq])
		}
	}
	t.Logf("%s: the first instance handled %d of %d before it stopped", e.BrokerName, byFirst, n)
}
