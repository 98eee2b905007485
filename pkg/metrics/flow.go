package metrics

// FlowRecorder is an optional extension of [Recorder]: a recorder that
// implements it is told when a handler's circuit breaker changes state and
// when a handler is paused or resumed. Both are rare, off the hot path.
type FlowRecorder interface {
	// BreakerState reports the handler's breaker state: "closed", "open"
	// or "half_open".
	BreakerState(handler, state string)
	// Paused reports whether the handler is paused by code.
	Paused(handler string, paused bool)
}

// breakerStates are the values of the Prometheus breaker-state gauge's
// state label: the current one is 1, the others 0.
var breakerStates = []string{"closed", "open", "half_open"}

// BreakerState forwards to the recorders that implement [FlowRecorder].
func (m Multi) BreakerState(h, state string) {
	for _, r := range m {
		if f, ok := r.(FlowRecorder); ok {
			f.BreakerState(h, state)
		}
	}
}

// Paused forwards to the recorders that implement [FlowRecorder].
func (m Multi) Paused(h string, paused bool) {
	for _, r := range m {
		if f, ok := r.(FlowRecorder); ok {
			f.Paused(h, paused)
		}
	}
}

// BreakerState sets switchyard_handler_breaker_state{handler,state}: 1 for
// the current state, 0 for the others.
func (p *Prometheus) BreakerState(h, state string) {
	for _, s := range breakerStates {
		v := 0.0
		if s == state {
			v = 1
		}
		p.breakerState.WithLabelValues(h, s).Set(v)
	}
}

// Paused sets switchyard_handler_paused{handler} to 1 or 0.
func (p *Prometheus) Paused(h string, paused bool) {
	v := 0.0
	if paused {
		v = 1
	}
	p.paused.WithLabelValues(h).Set(v)
}
