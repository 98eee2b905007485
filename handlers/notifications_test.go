package handlers_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/pkg/failure"
)

func TestOrderConfirmation(t *testing.T) {
	reserved := handlers.InventoryReserved{OrderID: "o1", Email: "a@example.com", TotalCents: 1250,
		Items: []handlers.Item{{SKU: "widget", Qty: 5, PriceCents: 250}}}
	down := errors.New("smtp down")
	tests := []struct {
		name       string
		event      handlers.InventoryReserved
		notifyErr  error
		publishErr error
		permanent  bool
		wantErr    error
		wantSent   bool
	}{
		{name: "sent", event: reserved, wantSent: true},
		{name: "notifier down is transient", event: reserved, notifyErr: down, wantErr: down},
		{name: "publish failure is transient", event: reserved, publishErr: down, wantErr: down},
		{name: "no email is permanent", event: handlers.InventoryReserved{OrderID: "o2"}, permanent: true, wantErr: handlers.ErrInvalidOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var to, subject, body string
			n := handlers.NotifierFunc(func(_ context.Context, t, s, b string) error {
				to, subject, body = t, s, b
				return tt.notifyErr
			})
			pub := &recorder{err: tt.publishErr}
			err := handlers.OrderConfirmation(n, pub)(context.Background(), tt.event)
			if !errors.Is(err, tt.wantErr) || failure.IsPermanent(err) != tt.permanent {
				t.Fatalf("err = %v, want %v (permanent %v)", err, tt.wantErr, tt.permanent)
			}
			got := pub.published()
			if !tt.wantSent {
				if len(got) != 0 {
					t.Fatalf("published %v after a failure", got)
				}
				return
			}
			if to != "a@example.com" || !strings.Contains(subject, "o1") || !strings.Contains(body, "12.50") {
				t.Errorf("notified to=%q subject=%q body=%q", to, subject, body)
			}
			want := handlers.NotificationSent{OrderID: "o1", Channel: handlers.ChannelEmail}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("published %v, want %v", got, want)
			}
		})
	}
}

func TestLoggingNotifierNilLogger(t *testing.T) {
	if err := handlers.NewLoggingNotifier(nil).Notify(context.Background(), "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
}
