package service

// CancelGrace is how long Run waits for handlers after the shutdown timeout
// cancelled their context, for tests that bound Run's shutdown.
const CancelGrace = cancelGrace

// HeldBy is how many messages the running subscriptions of group hold,
// queued or in flight: what they took from the broker and have not settled.
func HeldBy(s *Service, group string) int {
	s.mu.Lock()
	consumers := s.consumers
	s.mu.Unlock()
	n := 0
	for _, c := range consumers {
		if c.key.group == group && c.disp != nil {
			c.disp.mu.Lock()
			n += c.disp.held
			c.disp.mu.Unlock()
		}
	}
	return n
}

// Gathering is how many messages the open batch of the batch handler name
// holds: joined, not withdrawn, not yet handed to its fn.
func Gathering(s *Service, name string) int {
	h := (*s.byName.Load())[name]
	b, ok := h.batch.(interface{ gatheringLen() int })
	if !ok {
		return 0
	}
	return b.gatheringLen()
}

func (b *batcher[T]) gatheringLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open == nil || b.open.taken {
		return 0
	}
	return b.open.live
}
