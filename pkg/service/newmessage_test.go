package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                                 { return c.t }
func (fixedClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// The headers a published message carries are the contract other
// producers and consumers rely on.
func TestNewMessageWritesEnvelope(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456780, time.FixedZone("CET", 3600))
	svc := service.New(newBroker(t), service.WithSource("orders-svc"), service.WithClock(fixedClock{at}))
	msg, topic, err := svc.NewMessage(middleware.WithCorrelationID(context.Background(), "req-7"), orderPlaced{OrderID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if topic != "orders" {
		t.Errorf("topic = %q, want orders", topic)
	}
	id := msg.Metadata[header.ID]
	want := map[string]string{
		header.SpecVersion:   "1.0",
		header.ID:            id,
		header.Type:          "orders.order_placed",
		header.Source:        "orders-svc",
		header.Time:          "2026-01-02T02:04:05.12345678Z",
		header.ContentType:   "application/json",
		header.Key:           "o-1",
		header.CorrelationID: "req-7",
	}
	if len(msg.Metadata) != len(want) {
		t.Errorf("metadata = %v, want %v", msg.Metadata, want)
	}
	for k, v := range want {
		if got := msg.Metadata[k]; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if msg.UUID != id {
		t.Errorf("message UUID %q, ce_id %q: want the same", msg.UUID, id)
	}
	env, err := event.ReadEnvelope(msg)
	if err != nil || !env.Time.Equal(at) {
		t.Errorf("ReadEnvelope = %v (time %v), %v; want time %v", env, env.Time, err, at)
	}

	msg, _, err = svc.NewMessage(context.Background(), orderPlaced{}, service.WithID("fixed-id"), service.WithKey("k"), service.ToTopic("elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.UUID != "fixed-id" || msg.Metadata[header.ID] != "fixed-id" || msg.Metadata[header.CorrelationID] != "fixed-id" ||
		msg.Metadata[header.Key] != "k" || msg.Metadata[header.Time] != "2026-01-02T02:04:05.12345678Z" {
		t.Errorf("with options: metadata = %v", msg.Metadata)
	}
}

// Generated ids are UUIDv7s, increasing in the order they were made.
func TestNewMessageIDsAreIncreasingUUIDv7(t *testing.T) {
	svc := service.New(newBroker(t))
	prev := ""
	for range 5000 {
		msg, _, err := svc.NewMessage(context.Background(), orderPlaced{})
		if err != nil {
			t.Fatal(err)
		}
		u, err := uuid.Parse(msg.UUID)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != msg.UUID {
			t.Fatalf("id %q: %v, version %d, variant %v; want a canonical UUIDv7", msg.UUID, err, u.Version(), u.Variant())
		}
		if d := time.Since(time.Unix(u.Time().UnixTime())); d < -time.Second || d > time.Minute {
			t.Fatalf("id %q is %s from now", msg.UUID, d)
		}
		if msg.UUID <= prev {
			t.Fatalf("id %q after %q: want increasing", msg.UUID, prev)
		}
		prev = msg.UUID
	}
}
