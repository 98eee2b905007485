package service

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// NotifyShutdown returns a context cancelled by the first SIGINT or SIGTERM,
// which starts a graceful shutdown of Run. A second signal exits the process
// at once with status 130, for an operator who will not wait, until the
// returned stop function is called: it stops listening for signals and ends
// the watcher goroutine.
func NotifyShutdown(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	stopped := make(chan struct{})
	var once sync.Once
	go func() {
		select {
		case <-sigs:
			fmt.Fprintln(os.Stderr, "shutting down gracefully; signal again to exit now")
			cancel()
		case <-ctx.Done():
			signal.Stop(sigs)
			return
		}
		select {
		case <-sigs:
			os.Exit(130)
		case <-stopped: // the returned stop was called: the watcher is done
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		once.Do(func() { close(stopped) })
		cancel()
	}
}
