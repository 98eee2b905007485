package ops

// BreakListener closes the listener under a serving server, as a failing
// accept does.
func BreakListener(s *Server) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln.Close()
}
