package eventschema

import (
	"encoding/json"
	"fmt"
	"path"
	"reflect"

	"github.com/invopop/jsonschema"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// Of returns the JSON Schema (draft 2020-12) of e's payload, titled with its
// event type. Nested named types are "$defs" of the returned document.
func Of(e event.Event) (json.RawMessage, error) {
	t := reflect.TypeOf(e)
	if t == nil {
		return nil, fmt.Errorf("eventschema: nil event")
	}
	r := &jsonschema.Reflector{
		Anonymous:                 true, // no $id derived from the Go package path: it is not a URL anyone serves
		AllowAdditionalProperties: true,
		ExpandedStruct:            true, // the event itself at the top, not a $ref to it
		Namer:                     defName,
	}
	s := r.ReflectFromType(t)
	s.Title = e.EventType()
	out, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("eventschema: %s (%T): %w", e.EventType(), e, err)
	}
	return out, nil
}

// defName names a nested type after its package too, so that two packages'
// Item types do not collide in "$defs".
func defName(t reflect.Type) string {
	if p := t.PkgPath(); p != "" {
		return path.Base(p) + "." + t.Name()
	}
	return t.Name()
}
