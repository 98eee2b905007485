package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/outbox"
	"github.com/switchyard-go/switchyard/pkg/retry"
)

// Outbox is the outbox section: a relay that runs beside the service and
// publishes, through the service's broker, what the service's transactions
// added to a PostgreSQL outbox table (see docs/outbox.md). Off unless store
// is set. The service's code adds to the same table with
// postgres.NewOutbox(pool, cfg.Outbox.PostgresConfig()).
type Outbox struct {
	// Store is none (default: no relay) or postgres (the postgres
	// section's database).
	Store string `yaml:"store"`
	// Table is the outbox table, optionally schema-qualified. Default
	// switchyard_outbox. One table per service: a relay publishes every
	// record of it.
	Table string `yaml:"table"`
	// Channel is the NOTIFY channel that wakes the relay when records are
	// committed. Default: the table name, dots written "_"; "-" for none
	// (the relay polls only).
	Channel string `yaml:"channel"`
	// DeletePublished deletes records once published instead of marking
	// them. Default false.
	DeletePublished bool `yaml:"delete_published"`
	// BatchSize is the most records published in one database
	// transaction. Default 100.
	BatchSize int `yaml:"batch_size"`
	// PollInterval is how long the relay sleeps when it found nothing.
	// Default 1s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Backoff spaces the retries of a record whose publish failed, each
	// record on its own schedule (its max_attempts and max_elapsed are
	// refused: use MaxAttempts). Default 100ms doubling up to 30s, jitter
	// 0.2.
	Backoff retry.Policy `yaml:"backoff"`
	// MaxAttempts is how many failed publishes park a record: it is kept,
	// listed by "switchyard outbox list" and published again after
	// "switchyard outbox retry"; later records of its key wait behind it.
	// Default 20 (about 6.5 minutes of failures with the default backoff).
	MaxAttempts int `yaml:"max_attempts"`
}

// Enabled reports whether the section asks for a relay.
func (c Outbox) Enabled() bool { return c.Store != "" && c.Store != StoreNone }

// PostgresConfig is the table configuration of the section, for the
// service's own writes (postgres.NewOutbox) and for the relay.
func (c Outbox) PostgresConfig() postgres.OutboxConfig {
	return postgres.OutboxConfig{Table: c.Table, Channel: c.Channel, DeletePublished: c.DeletePublished}
}

// relay is the section's relay, Store, Publisher and Logger left to fill.
func (c Outbox) relay() outbox.Relay {
	return outbox.Relay{BatchSize: c.BatchSize, PollInterval: c.PollInterval, Backoff: c.Backoff, MaxAttempts: c.MaxAttempts}
}

// WithDefaults fills the zero settings when the relay is on.
func (c Outbox) WithDefaults() Outbox {
	if !c.Enabled() {
		return Outbox{Store: StoreNone}
	}
	if c.Table == "" {
		c.Table = postgres.DefaultOutboxTable
	}
	if c.Channel == "" {
		c.Channel = strings.ReplaceAll(c.Table, ".", "_") // as postgres.NewOutbox does
	}
	if c.BatchSize == 0 {
		c.BatchSize = outbox.DefaultBatchSize
	}
	if c.PollInterval == 0 {
		c.PollInterval = outbox.DefaultPollInterval
	}
	if c.Backoff.MaxInterval == 0 {
		c.Backoff.MaxInterval = outbox.DefaultMaxBackoff
	}
	c.Backoff = c.Backoff.WithDefaults()
	c.Backoff.MaxAttempts = 0 // the relay's own MaxAttempts counts, not the policy's
	if c.MaxAttempts == 0 {
		c.MaxAttempts = outbox.DefaultMaxAttempts
	}
	return c
}

// Validate reports every problem at once.
func (c Outbox) Validate() error {
	var err error
	switch c.Store {
	case "", StoreNone:
		if c != (Outbox{Store: c.Store}) {
			err = errors.Join(err, fmt.Errorf("outbox: settings given, but outbox.store is %q: want %s to run the relay", c.Store, StorePostgres))
		}
	case StorePostgres:
	default:
		err = errors.Join(err, fmt.Errorf("outbox.store: %q, want %s (default) or %s", c.Store, StoreNone, StorePostgres))
	}
	err = errors.Join(err, c.PostgresConfig().Validate())
	if c.BatchSize < 0 {
		err = errors.Join(err, fmt.Errorf("outbox.batch_size: %d, want >= 1 (0 means the default %d)", c.BatchSize, outbox.DefaultBatchSize))
	}
	if c.PollInterval < 0 {
		err = errors.Join(err, fmt.Errorf("outbox.poll_interval: %s, want > 0 (0 means the default %s)", c.PollInterval, outbox.DefaultPollInterval))
	}
	if c.MaxAttempts < 0 {
		err = errors.Join(err, fmt.Errorf("outbox.max_attempts: %d, want >= 1 failed publishes before a record is parked (0 means the default %d)", c.MaxAttempts, outbox.DefaultMaxAttempts))
	}
	if c.Backoff.MaxAttempts != 0 {
		err = errors.Join(err, fmt.Errorf("outbox.backoff.max_attempts: %d, want 0: set outbox.max_attempts, the failed publishes that park a record", c.Backoff.MaxAttempts))
	}
	if c.Backoff.MaxElapsed != 0 {
		err = errors.Join(err, fmt.Errorf("outbox.backoff.max_elapsed: %s, want 0: set outbox.max_attempts, the failed publishes that park a record", c.Backoff.MaxElapsed))
	}
	return errors.Join(err, c.Backoff.Validate("outbox.backoff"))
}
