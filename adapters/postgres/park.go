package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/park"
)

// ParkedTable holds the keys parked by dead_letter_order: key, shared by
// every instance of a service (see [ParkedKeys]).
const ParkedTable = "switchyard_parked_keys"

// ParkedKeys is a durable [park.Store]: parked keys survive restarts and are
// seen by every instance that shares the database. Run [Migrate] first.
type ParkedKeys struct{ pool *pgxpool.Pool }

var _ park.Store = (*ParkedKeys)(nil)

// NewParkedKeys returns a parked-key store on pool.
func NewParkedKeys(pool *pgxpool.Pool) *ParkedKeys { return &ParkedKeys{pool: pool} }

// Park implements [park.Store].
func (p *ParkedKeys) Park(ctx context.Context, group, key, messageID string) (string, error) {
	var first string
	// The no-op update makes RETURNING give the row that already was there.
	err := p.pool.QueryRow(ctx, `
		INSERT INTO `+ParkedTable+` AS p (consumer_group, key, message_id) VALUES ($1, $2, $3)
		ON CONFLICT (consumer_group, key) DO UPDATE SET message_id = p.message_id
		RETURNING message_id`, group, key, messageID).Scan(&first)
	if err != nil {
		return "", fmt.Errorf("postgres: park %q/%q: %w", group, key, err)
	}
	return first, nil
}

// Lookup implements [park.Store].
func (p *ParkedKeys) Lookup(ctx context.Context, group, key string) (string, bool, error) {
	var first string
	err := p.pool.QueryRow(ctx, `SELECT message_id FROM `+ParkedTable+` WHERE consumer_group = $1 AND key = $2`, group, key).Scan(&first)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("postgres: look up parked %q/%q: %w", group, key, err)
	}
	return first, true, nil
}

// Release implements [park.Store].
func (p *ParkedKeys) Release(ctx context.Context, group, key string) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM `+ParkedTable+` WHERE consumer_group = $1 AND key = $2`, group, key); err != nil {
		return fmt.Errorf("postgres: release parked %q/%q: %w", group, key, err)
	}
	return nil
}

// List implements [park.Store].
func (p *ParkedKeys) List(ctx context.Context, group string) ([]park.Key, error) {
	rows, err := p.pool.Query(ctx, `
		SELECT consumer_group, key, message_id, since FROM `+ParkedTable+`
		WHERE $1 = '' OR consumer_group = $1 ORDER BY since, key`, group)
	if err != nil {
		return nil, fmt.Errorf("postgres: list parked keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (park.Key, error) {
		var k park.Key
		err := r.Scan(&k.Group, &k.Key, &k.MessageID, &k.Since)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list parked keys: %w", err)
	}
	return out, nil
}
