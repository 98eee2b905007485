package handlers_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest"
)

// The runtime honours how the handlers classify their errors: a notifier
// outage is retried until it passes, a reservation without an email is
// dead-lettered at once.
func TestConfirmationFailuresOnTheRuntime(t *testing.T) {
	var calls atomic.Int32
	notifier := handlers.NotifierFunc(func(context.Context, string, string, string) error {
		if calls.Add(1) <= 2 {
			return errors.New("smtp down")
		}
		return nil
	})
	h := switchyardtest.Start(t, func(svc *service.Service) error {
		pub := handlers.PublisherFunc(func(ctx context.Context, e event.Event) error { return svc.Publish(ctx, e) })
		return service.Handle(svc, "notifications.confirm", handlers.OrderConfirmation(notifier, pub),
			service.Group("notifications"), service.Publishes(handlers.NotificationSent{}))
	})

	h.Send(handlers.InventoryReserved{OrderID: "o-1", Email: "ada@example.com"})
	sent := switchyardtest.WaitFor(h, func(m switchyardtest.Message[handlers.NotificationSent]) bool { return m.Event.OrderID == "o-1" })
	if sent.Event.Channel != handlers.ChannelEmail {
		t.Errorf("sent %+v", sent.Event)
	}
	h.WaitIdle()
	if c := h.Counts("notifications.confirm"); c.Retried != 2 || c.Handled != 1 || calls.Load() != 3 {
		t.Errorf("counts %+v after %d notifier calls, want two retries, then the confirmation", c, calls.Load())
	}

	h.Send(handlers.InventoryReserved{OrderID: "o-2"})
	dl := h.WaitDeadLetter(func(dl switchyardtest.DeadLetter) bool { return dl.Envelope.Key == "o-2" })
	if dl.Reason != failure.ReasonPermanent || dl.Attempts != 1 || !strings.Contains(dl.Error, "email is empty") {
		t.Errorf("dead letter %s after %d attempts: %s; want permanent at once, naming the empty email", dl.Reason, dl.Attempts, dl.Error)
	}
}
