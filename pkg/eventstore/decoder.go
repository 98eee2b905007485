package eventstore

import (
	"fmt"
	"sync"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
)

// Decoder turns records back into event values of the types registered
// with [Register], upcasting old schema versions with the upcasters of its
// [event.Registry]. It is safe for concurrent use.
type Decoder struct {
	registry *event.Registry
	codec    event.Codec
	mu       sync.RWMutex
	types    map[string]func(*event.Envelope, []byte) (event.Event, error)
}

// NewDecoder returns a decoder using r's versions and upcasters (nil: a new
// registry) and codec c (nil: event.JSON). Pass the service's registry
// (service.Service.Registry) to share its upcasters.
func NewDecoder(r *event.Registry, c event.Codec) *Decoder {
	if r == nil {
		r = event.NewRegistry()
	}
	if c == nil {
		c = event.JSON{}
	}
	return &Decoder{registry: r, codec: c, types: map[string]func(*event.Envelope, []byte) (event.Event, error){}}
}

// Registry returns the decoder's registry, to add upcasters with
// [event.Registry.Upcast].
func (d *Decoder) Registry() *event.Registry { return d.registry }

// Register makes d decode events of T's type name into T values (not
// pointers: Apply functions switch on T). It registers T with d's registry.
func Register[T event.Event](d *Decoder) error {
	var zero T
	if err := d.registry.Register(zero); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.types[zero.EventType()] = func(env *event.Envelope, data []byte) (event.Event, error) {
		return event.Decode[T](d.registry, d.codec, env, data)
	}
	return nil
}

// Decode returns the event of rec at the current version of its type. Its
// errors are permanent and carry a reason (unknown_type,
// unsupported_version, decode).
func (d *Decoder) Decode(rec Record) (event.Event, error) {
	d.mu.RLock()
	dec, ok := d.types[rec.Envelope.Type]
	d.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("eventstore: %q version %d: %w", rec.StreamID, rec.Version,
			failure.WithReason(failure.ReasonUnknownType, fmt.Errorf("event type %q is not registered with the decoder", rec.Envelope.Type)))
	}
	env := rec.Envelope
	e, err := dec(&env, rec.Data)
	if err != nil {
		return nil, fmt.Errorf("eventstore: %q version %d: %w", rec.StreamID, rec.Version, err)
	}
	return e, nil
}

// DecodeAll decodes recs in order, stopping at the first error.
func (d *Decoder) DecodeAll(recs []Record) ([]event.Event, error) {
	out := make([]event.Event, len(recs))
	for i, r := range recs {
		e, err := d.Decode(r)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}
