package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// Store is a durable [idempotency.Store] shared by every instance that uses
// the same database. Lease times are the database's clock, so instances
// with skewed clocks agree. Completed keys stay until [Purge] deletes them.
//
// Store dedupes handling, not effects: the handler's writes and the
// completion are two commits. For exactly-once effects use
// [TransactionalIdempotency].
type Store struct {
	pool *pgxpool.Pool
}

var _ idempotency.Store = (*Store)(nil)

// NewStore returns a store on pool. Run [Migrate] first.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Claim implements [idempotency.Store].
func (s *Store) Claim(ctx context.Context, key string, lease time.Duration) (idempotency.Claim, error) {
	handler := ""
	if d := middleware.DeliveryFrom(ctx); d != nil && d.Handler != nil {
		handler = d.Handler.Name
	}
	token := newToken()
	for range 3 { // a key released between the two statements: try again
		var until time.Time
		err := s.pool.QueryRow(ctx, `
			INSERT INTO `+Table+` AS p (key, handler, status, owner, claimed_until)
			VALUES ($1, $2, 'claimed', $3, clock_timestamp() + $4 * interval '1 microsecond')
			ON CONFLICT (key) DO UPDATE
				SET handler = EXCLUDED.handler, owner = EXCLUDED.owner, claimed_until = EXCLUDED.claimed_until
				WHERE p.status = 'claimed' AND p.claimed_until <= clock_timestamp()
			RETURNING claimed_until`,
			key, handler, token, lease.Microseconds()).Scan(&until)
		if err == nil {
			return idempotency.Claim{State: idempotency.Claimed, Token: token, Until: until}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return idempotency.Claim{}, fmt.Errorf("postgres: claim %q: %w", key, err)
		}
		var status string
		var claimedUntil *time.Time
		err = s.pool.QueryRow(ctx, `SELECT status, claimed_until FROM `+Table+` WHERE key = $1`, key).Scan(&status, &claimedUntil)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return idempotency.Claim{}, fmt.Errorf("postgres: claim %q: %w", key, err)
		}
		if status == statusCompleted {
			return idempotency.Claim{State: idempotency.Completed}, nil
		}
		c := idempotency.Claim{State: idempotency.InProgress}
		if claimedUntil != nil {
			c.Until = *claimedUntil
		}
		return c, nil
	}
	return idempotency.Claim{}, fmt.Errorf("postgres: claim %q: key keeps changing under contention", key)
}

// Complete implements [idempotency.Store].
func (s *Store) Complete(ctx context.Context, key, token string) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE `+Table+` SET status = 'completed', completed_at = clock_timestamp(), owner = NULL, claimed_until = NULL
		WHERE key = $1 AND owner = $2 AND status = 'claimed'`, key, token)
	if err != nil {
		return fmt.Errorf("postgres: complete %q: %w", key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: complete %q: %w", key, idempotency.ErrLeaseLost)
	}
	return nil
}

// Extend implements [idempotency.Extender].
func (s *Store) Extend(ctx context.Context, key, token string, lease time.Duration) (time.Time, error) {
	var until time.Time
	err := s.pool.QueryRow(ctx, `
		UPDATE `+Table+` SET claimed_until = clock_timestamp() + $3 * interval '1 microsecond'
		WHERE key = $1 AND owner = $2 AND status = 'claimed'
		RETURNING claimed_until`, key, token, lease.Microseconds()).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("postgres: extend %q: %w", key, idempotency.ErrLeaseLost)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("postgres: extend %q: %w", key, err)
	}
	return until, nil
}

// Release implements [idempotency.Store].
func (s *Store) Release(ctx context.Context, key, token string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+Table+` WHERE key = $1 AND owner = $2 AND status = 'claimed'`, key, token)
	if err != nil {
		return fmt.Errorf("postgres: release %q: %w", key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: release %q: %w", key, idempotency.ErrLeaseLost)
	}
	return nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
