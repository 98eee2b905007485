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
