package event

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/switchyard-go/switchyard/pkg/failure"
)

// Upcaster turns the payload of one version of an event into the payload of
// the next version.
type Upcaster func(payload []byte) ([]byte, error)

// Registry knows the event types a service handles or publishes: their
// current version and the upcasters from older versions. It is safe for
// concurrent use.
type Registry struct {
	mu    sync.RWMutex
	types map[string]*typeInfo
}

type typeInfo struct {
	version   int
	topic     string
	sample    Event            // the value registered, for describing the Go type (see Events)
	upcasters map[int]Upcaster // from version -> next version
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]*typeInfo{}} }

// Register records e's type, current version and topic. Registering the same
// type twice with different versions is an error: one process must agree with
// itself about what the current schema is.
func (r *Registry) Register(e Event) error { return r.RegisterAll(e) }

// RegisterAll registers every event, or none of them if any is invalid or
// conflicts with a registered version.
func (r *Registry) RegisterAll(events ...Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs error
	seen := map[string]int{}
	for _, e := range events {
		name, version := e.EventType(), e.EventVersion()
		switch {
		case name == "":
			errs = errors.Join(errs, fmt.Errorf("event: %T has an empty EventType", e))
			continue
		case version < 1:
			errs = errors.Join(errs, fmt.Errorf("event: %s (%T): version %d, want >= 1", name, e, version))
			continue
		}
		known, ok := seen[name]
		if t, registered := r.types[name]; registered {
			known, ok = t.version, true
		}
		if ok && known != version {
			errs = errors.Join(errs, fmt.Errorf("event: %s registered with versions %d and %d", name, known, version))
		}
		seen[name] = version
	}
	if errs != nil {
		return errs
	}
	for _, e := range events {
		if _, ok := r.types[e.EventType()]; !ok {
			r.types[e.EventType()] = &typeInfo{version: e.EventVersion(), topic: TopicOf(e), sample: e, upcasters: map[int]Upcaster{}}
		}
	}
	return nil
}

// Upcast registers fn to turn version from of the named event into version
// from+1. Register the event first.
func (r *Registry) Upcast(eventType string, from int, fn Upcaster) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.types[eventType]
	if !ok {
		return fmt.Errorf("event: upcaster for unregistered type %s", eventType)
	}
	if from < 1 || from >= t.version {
		return fmt.Errorf("event: upcaster for %s from version %d, want 1..%d", eventType, from, t.version-1)
	}
	t.upcasters[from] = fn
	return nil
}

// Known reports whether the event type is registered.
func (r *Registry) Known(eventType string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.types[eventType]
	return ok
}

// Types returns the registered type names.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.types))
	for name := range r.types {
		out = append(out, name)
	}
	return out
}

// Events returns the value each type was first registered with, sorted by
// type name, so that tools (JSON Schema, AsyncAPI) can describe the Go types
// behind the names.
func (r *Registry) Events() []Event {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Event, 0, len(r.types))
	for _, t := range r.types {
		out = append(out, t.sample)
	}
	slices.SortFunc(out, func(a, b Event) int { return cmp.Compare(a.EventType(), b.EventType()) })
	return out
}

// upcast brings payload from version to the current version of eventType.
func (r *Registry) upcast(eventType string, version int, payload []byte) ([]byte, error) {
	r.mu.RLock()
	t, ok := r.types[eventType]
	r.mu.RUnlock()
	if !ok {
		return nil, failure.WithReason(failure.ReasonUnknownType, fmt.Errorf("event type %q is not known to this service", eventType))
	}
	if version > t.version {
		return nil, failure.WithReason(failure.ReasonUnsupportedVersion,
			fmt.Errorf("%s version %d is newer than this service knows (%d)", eventType, version, t.version))
	}
	for v := version; v < t.version; v++ {
		up, ok := t.upcasters[v]
		if !ok {
			return nil, failure.WithReason(failure.ReasonUnsupportedVersion,
				fmt.Errorf("%s version %d: no upcaster from version %d to %d", eventType, version, v, v+1))
		}
		var err error
		if payload, err = up(payload); err != nil {
			return nil, failure.WithReason(failure.ReasonDecode,
				fmt.Errorf("%s: upcasting version %d to %d: %w", eventType, v, v+1, err))
		}
	}
	return payload, nil
}

// Decode reads payload, carried in envelope env, into a T: it checks the
// content type, upcasts old versions and unmarshals. Every error is permanent
// and carries the reason a dead letter needs.
func Decode[T Event](r *Registry, c Codec, env *Envelope, payload []byte) (T, error) {
	var v T
	err := DecodeInto(r, c, env, payload, &v)
	return v, err
}

// DecodeInto is [Decode] into *dst, which must hold T's zero value: a
// caller that reuses dst saves the allocation Decode makes for it.
func DecodeInto[T Event](r *Registry, c Codec, env *Envelope, payload []byte, dst *T) error {
	if !Accepts(c, env.ContentType) {
		return failure.WithReason(failure.ReasonUnsupportedContentType, errContentType(c, env.ContentType))
	}
	if env.Version != (*dst).EventVersion() {
		var err error
		if payload, err = r.upcast(env.Type, env.Version, payload); err != nil {
			return err
		}
	}
	if err := c.Unmarshal(payload, dst); err != nil {
		return failure.WithReason(failure.ReasonDecode, fmt.Errorf("decoding %s payload: %w", env.Type, err))
	}
	return nil
}
