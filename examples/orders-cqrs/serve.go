package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// serve runs the service and the HTTP API on addr until ctx ends.
func serve(ctx context.Context, a *app, addr string, stdout io.Writer, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("app.addr: %w", err)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
	app, err := a.start(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "orders-cqrs: serving on http://%s (POST /orders, /orders/{id}/pay, /orders/{id}/ship; GET /orders/{id}, /orders/{id}/events; POST /rebuild)\n", ln.Addr())
	select {
	case <-app.ended:
	case err = <-srvErr:
	case <-ctx.Done(): // interrupted: the normal end of serve
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil {
		logger.Warn("http shutdown", "error", serr)
	}
	if rerr := app.stop(); err == nil || errors.Is(err, http.ErrServerClosed) {
		err = rerr
	}
	return err
}
