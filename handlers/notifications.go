package handlers

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/switchyard-go/switchyard/pkg/failure"
)

// Notifier delivers a message to a customer. An error is taken as transient
// and retried; wrap it with [failure.Permanent] when retrying cannot help.
type Notifier interface {
	Notify(ctx context.Context, to, subject, body string) error
}

// NotifierFunc adapts a function to [Notifier].
type NotifierFunc func(ctx context.Context, to, subject, body string) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, to, subject, body string) error {
	return f(ctx, to, subject, body)
}

// LoggingNotifier "sends" notifications by logging them at info level.
type LoggingNotifier struct {
	logger *slog.Logger
}

// NewLoggingNotifier returns a notifier that logs to logger; nil discards.
func NewLoggingNotifier(logger *slog.Logger) *LoggingNotifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &LoggingNotifier{logger: logger}
}

// Notify logs the notification.
func (n *LoggingNotifier) Notify(ctx context.Context, to, subject, body string) error {
	n.logger.InfoContext(ctx, "notification", slog.String("to", to), slog.String("subject", subject), slog.String("body", body))
	return nil
}

// ChannelEmail is the channel [OrderConfirmation] reports.
const ChannelEmail = "email"

// OrderConfirmation returns the handler of [InventoryReserved]: it sends
// the customer an order confirmation with n, then publishes
// [NotificationSent] with p; declare it. A reservation without an email is
// a permanent failure. If publishing fails after the notification was sent,
// the retry sends it again: notifications are at least once.
func OrderConfirmation(n Notifier, p Publisher) func(context.Context, InventoryReserved) error {
	return func(ctx context.Context, e InventoryReserved) error {
		if e.Email == "" {
			return failure.Permanent(fmt.Errorf("handlers: order %q: %w: email is empty", e.OrderID, ErrInvalidOrder))
		}
		subject := fmt.Sprintf("Order %s confirmed", e.OrderID)
		body := fmt.Sprintf("Your order %s of %d item(s), total %s, is confirmed.", e.OrderID, len(e.Items), formatCents(e.TotalCents))
		if err := n.Notify(ctx, e.Email, subject, body); err != nil {
			return fmt.Errorf("handlers: notify %q of order %q: %w", e.Email, e.OrderID, err)
		}
		return p.Publish(ctx, NotificationSent{OrderID: e.OrderID, Channel: ChannelEmail})
	}
}

func formatCents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
