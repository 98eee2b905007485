package asyncapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// schemas collects components/schemas. A payload schema arrives as a
// standalone JSON Schema document whose nested types are under "$defs";
// inside an AsyncAPI document a "$ref" resolves against the whole document,
// so the definitions move to components/schemas and the references follow.
type schemas struct {
	byID map[string]any
	orig map[string]any // a hoisted definition as it came, to recognise it again
}

func newSchemas() *schemas {
	return &schemas{byID: map[string]any{headersSchemaID: headersSchema()}, orig: map[string]any{}}
}

// payload turns a standalone schema into one that fits the document:
// "$defs" hoisted, "$schema" and "$id" dropped (the document's schema
// format applies).
func (s *schemas) payload(raw json.RawMessage) (any, error) {
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("payload schema: %w", err)
	}
	defs, _ := root["$defs"].(map[string]any)
	delete(root, "$defs")
	delete(root, "$schema")
	delete(root, "$id")
	// Same name, same content is the same Go type described twice (by two
	// events): keep one. Same name, other content is another type: number it.
	rename := map[string]string{}
	for _, name := range sortedKeys(defs) {
		id := sanitize(name)
		for n := 2; ; n++ {
			_, taken := s.byID[id]
			if !taken || reflect.DeepEqual(s.orig[id], defs[name]) {
				break
			}
			id = fmt.Sprintf("%s_%d", sanitize(name), n)
		}
		rename[name] = id
		s.byID[id], s.orig[id] = nil, defs[name] // reserved; filled once references are rewritten
	}
	for name, id := range rename {
		s.byID[id] = rewriteRefs(defs[name], rename)
	}
	return rewriteRefs(root, rename), nil
}

// rewriteRefs points "#/$defs/X" references at components/schemas.
func rewriteRefs(v any, rename map[string]string) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if ref, ok := x.(string); ok && k == "$ref" && strings.HasPrefix(ref, "#/$defs/") {
				if id, ok := rename[strings.TrimPrefix(ref, "#/$defs/")]; ok {
					out[k] = "#/components/schemas/" + id
					continue
				}
			}
			out[k] = rewriteRefs(x, rename)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = rewriteRefs(x, rename)
		}
		return out
	}
	return v
}
