package eventschema_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/eventschema"
)

type line struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty,omitempty"`
}

type placed struct {
	OrderID string    `json:"order_id"`
	Lines   []line    `json:"lines"`
	At      time.Time `json:"at"`
	Note    string    `json:"note,omitempty"`
	secret  string
	Skipped string `json:"-"`
}

func (placed) EventType() string { return "test.placed" }
func (placed) EventVersion() int { return 1 }

func TestOf(t *testing.T) {
	raw, err := eventschema.Of(placed{})
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Schema     string                     `json:"$schema"`
		Title      string                     `json:"title"`
		Type       string                     `json:"type"`
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
		Defs       map[string]struct {
			Required   []string                   `json:"required"`
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
		Additional *bool  `json:"additionalProperties"`
		ID         string `json:"$id"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if s.Title != "test.placed" || s.Type != "object" || s.ID != "" || s.Additional != nil {
		t.Errorf("title %q, type %q, $id %q, additionalProperties %v, want test.placed, object, none, none\n%s", s.Title, s.Type, s.ID, s.Additional, raw)
	}
	if want := []string{"order_id", "lines", "at"}; !reflect.DeepEqual(s.Required, want) {
		t.Errorf("required = %q, want %q (omitempty fields are optional)", s.Required, want)
	}
	var names []string
	for n := range s.Properties {
		names = append(names, n)
	}
	if len(names) != 4 || s.Properties["secret"] != nil || s.Properties["Skipped"] != nil {
		t.Errorf("properties %q, want order_id, lines, at, note", names)
	}
	if got := string(s.Properties["at"]); got != `{"type":"string","format":"date-time"}` {
		t.Errorf("at = %s, want a date-time string", got)
	}
	l, ok := s.Defs["eventschema_test.line"]
	if !ok || !reflect.DeepEqual(l.Required, []string{"sku"}) {
		t.Errorf("$defs = %+v, want eventschema_test.line requiring sku\n%s", s.Defs, raw)
	}
}

func TestOfIsDeterministic(t *testing.T) {
	a, _ := eventschema.Of(placed{})
	for range 20 {
		if b, _ := eventschema.Of(placed{}); string(a) != string(b) {
			t.Fatalf("two runs differ:\n%s\n%s", a, b)
		}
	}
}
