package main

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// errNoExactlyOnce: the transactional idempotency of adapters/postgres is
// not in this build yet, so the exactly-once variant of kill9 cannot run.
var errNoExactlyOnce = errors.New("faults: adapters/postgres (transactional idempotency) is not available in this build")

// exactlyOnceAvailable reports whether the kill9-eo variant can run.
func exactlyOnceAvailable() bool { return false }

// exactlyOnceRecorder returns the service options and the handler that
// record a handling in table inside the idempotency transaction.
func exactlyOnceRecorder(_ context.Context, _ *pgxpool.Pool, _ string, _ int) ([]service.Option, func(context.Context, Tick) error, error) {
	return nil, nil, errNoExactlyOnce
}
