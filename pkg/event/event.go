package event

// Event is implemented by every domain event type.
type Event interface {
	// EventType is the stable name of the event, e.g. "orders.order_placed".
	EventType() string
	// EventVersion is the schema version of this Go type, starting at 1.
	EventVersion() int
}

// Keyed is implemented by events that belong to an aggregate. The key orders
// events: two events with the same key are handled in publish order.
type Keyed interface {
	EventKey() string
}

// Topical is implemented by events that name their topic. Without it an
// event's topic is its type name.
type Topical interface {
	EventTopic() string
}

// TopicOf returns the topic an event is published to.
func TopicOf(e Event) string {
	if t, ok := e.(Topical); ok {
		if topic := t.EventTopic(); topic != "" {
			return topic
		}
	}
	return e.EventType()
}

// KeyOf returns the event's key, or "" when it has none.
func KeyOf(e Event) string {
	if k, ok := e.(Keyed); ok {
		return k.EventKey()
	}
	return ""
}
