package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// listen LISTENs on channel on a dedicated connection taken from the pool
// (and not returned to it) and sends on the returned channel, without
// blocking, for each notification, until ctx ends. A lost connection is
// re-established every second; wake-ups in between are lost (polling
// covers them) and a reconnection sends one. who names the caller in
// errors.
func listen(ctx context.Context, pool *pgxpool.Pool, channel, who string) (<-chan struct{}, error) {
	conn, err := listenConn(ctx, pool, channel, who)
	if err != nil {
		return nil, err
	}
	out := make(chan struct{}, 1)
	wake := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(out)
		for {
			if conn != nil {
				_, err := conn.WaitForNotification(ctx)
				if err == nil {
					wake()
					continue
				}
				closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				_ = conn.Close(closeCtx)
				cancel()
				conn = nil
			}
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			if c, err := listenConn(ctx, pool, channel, who); err == nil {
				conn = c
				wake() // something may have been committed meanwhile
			}
		}
	}()
	return out, nil
}

func listenConn(ctx context.Context, pool *pgxpool.Pool, channel, who string) (*pgx.Conn, error) {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s listen: %w", who, err)
	}
	conn := pc.Hijack()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("postgres: %s listen on %q: %w", who, channel, err)
	}
	return conn, nil
}
