package metrics

import "time"

// BatchRecorder is an optional extension of [Recorder]: a recorder that
// implements it is told of every batch a batch handler handled, with its
// size and how long the handler took for it.
type BatchRecorder interface {
	Batch(handler string, size int, d time.Duration)
}

// Batch forwards to the recorders that implement [BatchRecorder].
func (m Multi) Batch(h string, size int, d time.Duration) {
	for _, r := range m {
		if b, ok := r.(BatchRecorder); ok {
			b.Batch(h, size, d)
		}
	}
}

// Batch counts the batch and its messages.
func (s *Stats) Batch(_ string, size int, _ time.Duration) {
	s.batches.Add(1)
	s.batched.Add(int64(size))
}

// Batch observes switchyard_batch_size{handler} and
// switchyard_batch_duration_seconds{handler}.
func (p *Prometheus) Batch(h string, size int, d time.Duration) {
	p.batchSize.WithLabelValues(h).Observe(float64(size))
	p.batchDuration.WithLabelValues(h).Observe(d.Seconds())
}
