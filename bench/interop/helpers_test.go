package interop_test

import (
	"context"
	"testing"

	"github.com/switchyard-go/switchyard/internal/interoptest"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// The shared events, brokers and service runner are in the root module's
// internal/interoptest (test files can't be imported across packages, let
// alone modules).

// billing registers a typed handler for OrderPlaced in group "billing"
// that requests an invoice, reporting what it handles.
func billing(t *testing.T, svc *service.Service) <-chan interoptest.Handled {
	t.Helper()
	got := make(chan interoptest.Handled, 16)
	if err := service.Handle(svc, "billing.placed", func(ctx context.Context, e interoptest.OrderPlaced) error {
		got <- interoptest.Handled{Event: e, Envelope: middleware.DeliveryFrom(ctx).Envelope}
		return svc.Publish(ctx, interoptest.InvoiceRequested{OrderID: e.OrderID})
	}, service.Group("billing"), service.Publishes(interoptest.InvoiceRequested{})); err != nil {
		t.Fatal(err)
	}
	return got
}
