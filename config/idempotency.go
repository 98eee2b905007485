package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pkg/idempotency"
)

// Idempotency stores.
const (
	StoreNone     = "none"
	StoreMemory   = "memory"
	StorePostgres = "postgres"
)

// Idempotency is the idempotency section: the store in which every handler
// records the deliveries it completed, so that a redelivered one is skipped
// (see service.WithIdempotency). Off unless store is set.
type Idempotency struct {
	// Store is none (default: no deduplication), memory (one process; lost
	// on restart) or postgres (shared by every instance on the postgres
	// section's database, table switchyard_processed).
	Store string `yaml:"store"`
	// TTL is how long a completed key is remembered: a redelivery later
	// than that is handled again. Default 24h. Keep it longer than the
	// brokers may redeliver (retention, delayed retries, dead-letter
	// replays).
	TTL time.Duration `yaml:"ttl"`
	// Lease is how long a claim holds a key while its handler runs; an
	// instance that dies holding one lets another take the key after it.
	// Default per handler: every in-process attempt of its policy
	// (attempts × (timeout + max in-process wait) + 1m), at least 5m.
	Lease time.Duration `yaml:"lease"`
	// MaxEntries bounds the keys a memory store keeps (the oldest completed
	// go first). Default 100000. Memory store only.
	MaxEntries int `yaml:"max_entries"`
	// PurgeInterval is how often the postgres store deletes keys completed
	// more than TTL ago. Default 1h. Postgres store only.
	PurgeInterval time.Duration `yaml:"purge_interval"`
}

// DefaultPurgeInterval is the default of idempotency.purge_interval.
const DefaultPurgeInterval = time.Hour

// Enabled reports whether the section asks for a store.
func (c Idempotency) Enabled() bool { return c.Store != "" && c.Store != StoreNone }

// WithDefaults fills the zero settings of the selected store.
func (c Idempotency) WithDefaults() Idempotency {
	if !c.Enabled() {
		return Idempotency{Store: StoreNone}
	}
	if c.TTL == 0 {
		c.TTL = idempotency.DefaultTTL
	}
	switch c.Store {
	case StoreMemory:
		if c.MaxEntries == 0 {
			c.MaxEntries = idempotency.DefaultMaxEntries
		}
	case StorePostgres:
		if c.PurgeInterval == 0 {
			c.PurgeInterval = DefaultPurgeInterval
		}
	}
	return c
}

// Validate reports every problem at once. A setting of another store than
// the selected one is an error, not silence.
func (c Idempotency) Validate() error {
	var err error
	neg := func(key string, d time.Duration, def string) {
		if d < 0 {
			err = errors.Join(err, fmt.Errorf("idempotency.%s: %s, want > 0 (0 means %s)", key, d, def))
		}
	}
	neg("ttl", c.TTL, "the default "+idempotency.DefaultTTL.String())
	neg("lease", c.Lease, "a lease per handler")
	neg("purge_interval", c.PurgeInterval, "the default "+DefaultPurgeInterval.String())
	if c.MaxEntries < 0 {
		err = errors.Join(err, fmt.Errorf("idempotency.max_entries: %d, want >= 1 (0 means the default %d)", c.MaxEntries, idempotency.DefaultMaxEntries))
	}
	only := func(key string, set bool, store string) {
		if set && c.Store != store {
			err = errors.Join(err, fmt.Errorf("idempotency.%s: set, but it applies only to store %s and idempotency.store is %q", key, store, c.Store))
		}
	}
	switch c.Store {
	case "", StoreNone:
		if c.TTL != 0 || c.Lease != 0 || c.MaxEntries != 0 || c.PurgeInterval != 0 {
			err = errors.Join(err, fmt.Errorf("idempotency: settings given, but idempotency.store is %q: want %s or %s to turn deduplication on", c.Store, StoreMemory, StorePostgres))
		}
	case StoreMemory, StorePostgres:
		only("max_entries", c.MaxEntries != 0, StoreMemory)
		only("purge_interval", c.PurgeInterval != 0, StorePostgres)
	default:
		err = errors.Join(err, fmt.Errorf("idempotency.store: %q, want %s (default), %s or %s", c.Store, StoreNone, StoreMemory, StorePostgres))
	}
	return err
}
