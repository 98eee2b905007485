package service

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// NotifyShutdown returns a context cancelled by the first SIGINT or SIGTERM,
// which starts a graceful shutdown of Run. A second signal exits the process
// at once with status 130, for an operator who will not wait.
func NotifyShutdown(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
			fmt.Fprintln(os.Stderr, "shutting down gracefully; signal again to exit now")
			cancel()
		case <-ctx.Done():
			signal.Stop(sigs)
			return
		}
		<-sigs
		os.Exit(130)
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel()
	}
}
