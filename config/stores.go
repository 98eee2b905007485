package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// storeOptions are the service options of the idempotency and outbox
// sections.
func (c Config) storeOptions(logger *slog.Logger) []service.Option {
	var opts []service.Option
	idem := c.Idempotency.WithDefaults()
	var idemOpts []service.IdempotencyOption
	if idem.Lease > 0 {
		idemOpts = append(idemOpts, service.IdempotencyLease(idem.Lease))
	}
	var db *database
	if idem.Store == StorePostgres || c.Outbox.Enabled() {
		db = &database{cfg: c.Postgres, logger: logger, ttl: idem.TTL, purgeEvery: idem.PurgeInterval}
		opts = append(opts, service.WithCompanion(db))
	}
	switch idem.Store {
	case StoreMemory:
		store, err := idempotency.NewMemory(idempotency.MemoryConfig{MaxEntries: idem.MaxEntries, TTL: idem.TTL})
		if err != nil {
			return append(opts, service.WithStartError(fmt.Errorf("config: idempotency: %w", err)))
		}
		opts = append(opts, service.WithIdempotency(store, idemOpts...))
	case StorePostgres:
		db.store = &lateStore{}
		opts = append(opts, service.WithIdempotency(db.store, idemOpts...))
	}
	if c.Outbox.Enabled() {
		ob := c.Outbox.WithDefaults()
		db.outbox = &ob
	}
	return opts
}

// database is the companion that owns the pool of the postgres section
// while Run runs: it opens and checks the pool and migrates before any
// handler is subscribed, runs the outbox relay and the purge of completed
// idempotency keys, and stops them and closes the pool when Run returns.
type database struct {
	cfg        Postgres
	logger     *slog.Logger
	store      *lateStore // nil: idempotency is not on postgres
	outbox     *Outbox    // nil: no relay
	ttl        time.Duration
	purgeEvery time.Duration

	pool   *pgxpool.Pool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// stopTimeout bounds how long Stop waits for the relay's last batch.
const stopTimeout = 10 * time.Second

// Start implements service.Companion.
func (d *database) Start(ctx context.Context, s *service.Service) error {
	pc, err := d.cfg.poolConfig()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("config: postgres: %w", err)
	}
	// A pool connects lazily: ask now, so that a wrong address or password
	// ends Run before anything is consumed, not at the first message.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("config: postgres: connect: %w", err)
	}
	var ob *postgres.Outbox
	if d.outbox != nil {
		if ob, err = postgres.NewOutbox(pool, d.outbox.PostgresConfig()); err != nil {
			pool.Close()
			return fmt.Errorf("config: %w", err)
		}
	}
	if d.cfg.migrate() {
		var errs error
		if d.store != nil {
			errs = postgres.Migrate(ctx, pool)
		}
		if ob != nil {
			errs = errors.Join(errs, ob.Migrate(ctx))
		}
		if errs != nil {
			pool.Close()
			return fmt.Errorf("config: %w", errs)
		}
	}
	d.pool = pool
	// The relay and the purge outlive Run's context: Stop ends them once
	// the service has shut down, so that what its last handlers added to
	// the outbox is still published.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	if d.store != nil {
		d.store.set(postgres.NewStore(pool))
		d.wg.Go(func() { d.purge(bg) })
	}
	if ob != nil {
		relay := d.outbox.relay()
		relay.Store, relay.Publisher, relay.Logger = ob, s.Broker().Publisher(), d.logger
		d.wg.Go(func() {
			if err := relay.Run(bg); err != nil {
				d.logger.Error("outbox relay stopped", slog.Any("error", err))
			}
		})
	}
	return nil
}

// purge deletes idempotency keys completed more than ttl ago, every
// purgeEvery, until ctx is done.
func (d *database) purge(ctx context.Context) {
	t := time.NewTicker(d.purgeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := postgres.Purge(ctx, d.pool, d.ttl)
		switch {
		case err != nil && ctx.Err() == nil:
			d.logger.Warn("purging completed idempotency keys failed", slog.Any("error", err))
		case n > 0:
			d.logger.Debug("purged completed idempotency keys", slog.Int64("keys", n))
		}
	}
}

// Stop implements service.Companion: it ends the relay (a batch whose
// publishes were confirmed is committed) and the purge, waiting at most
// stopTimeout, then closes the pool.
func (d *database) Stop(context.Context) error {
	if d.pool == nil {
		return nil
	}
	d.cancel()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-time.After(stopTimeout):
		err = fmt.Errorf("config: postgres: the outbox relay did not stop within %s", stopTimeout)
	}
	d.pool.Close()
	d.pool = nil
	return err
}

// lateStore is the postgres idempotency store before its pool exists: the
// service takes its store when it is built, the pool is opened when Run
// starts, before any handler is subscribed.
type lateStore struct {
	s atomic.Pointer[postgres.Store]
}

var (
	_ idempotency.Store    = (*lateStore)(nil)
	_ idempotency.Extender = (*lateStore)(nil)
)

var errNoPool = errors.New("config: idempotency: the postgres store is used before Run opened its pool")

func (l *lateStore) set(s *postgres.Store) { l.s.Store(s) }

func (l *lateStore) get() (*postgres.Store, error) {
	if s := l.s.Load(); s != nil {
		return s, nil
	}
	return nil, errNoPool
}

func (l *lateStore) Claim(ctx context.Context, key string, lease time.Duration) (idempotency.Claim, error) {
	s, err := l.get()
	if err != nil {
		return idempotency.Claim{}, err
	}
	return s.Claim(ctx, key, lease)
}

func (l *lateStore) Complete(ctx context.Context, key, token string) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Complete(ctx, key, token)
}

func (l *lateStore) Extend(ctx context.Context, key, token string, lease time.Duration) (time.Time, error) {
	s, err := l.get()
	if err != nil {
		return time.Time{}, err
	}
	return s.Extend(ctx, key, token, lease)
}

func (l *lateStore) Release(ctx context.Context, key, token string) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Release(ctx, key, token)
}
