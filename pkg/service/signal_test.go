package service_test

import (
	"context"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestNotifyShutdown(t *testing.T) {
	t.Run("stop without a signal", func(t *testing.T) {
		ctx, stop := service.NotifyShutdown(context.Background())
		stop()
		recv(t, ctx.Done(), "cancellation by stop")
		goleak.VerifyNone(t)
	})
	t.Run("first signal cancels, stop releases the watcher", func(t *testing.T) {
		ctx, stop := service.NotifyShutdown(context.Background())
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		recv(t, ctx.Done(), "cancellation by SIGTERM")
		stop()
		goleak.VerifyNone(t)
	})
}
