package service

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/park"
)

// Values of [Policy.DeadLetterOrder].
const (
	// DeadLetterOrderNone: a dead letter affects only its own message.
	DeadLetterOrderNone = "none"
	// DeadLetterOrderKey: once a message of a key is dead-lettered, later
	// messages of the key follow it to the dead-letter topic (reason
	// key_parked) until the first is replayed successfully or the key is
	// released, so a replay restores the key's order.
	DeadLetterOrderKey = "key"
)

// parkRefresh is how often a running service reloads its groups' parked
// keys from the store, to learn keys other instances parked.
const parkRefresh = 10 * time.Second

// WithParkedKeys sets where keys parked by dead_letter_order: key are kept.
// Default: in process memory ([park.NewMemory]), which a restart forgets;
// adapters/postgres has a durable store shared by every instance.
func WithParkedKeys(store park.Store) Option { return func(s *Service) { s.parkStore = store } }

// parking is one consumer group's parked keys: the store, and a cache of
// it that every subscription of the group reads on each message.
type parking struct {
	store  park.Store
	group  string
	logger *slog.Logger
	// timeout bounds each store call on a message's way (the failure
	// path's timeout): a store that does not answer nacks the message.
	timeout time.Duration

	mu   sync.RWMutex
	keys map[string]parked // the cache
	gen  uint64            // counts changes this process made to keys
}

// parked is one cached parked key: the id of its first dead letter, and
// the change that cached it (see parking.gen).
type parked struct {
	first string
	gen   uint64
}

// parkingFor returns the parking of group, made on first use.
func (s *Service) parkingFor(group string) *parking {
	s.parkMu.Lock()
	defer s.parkMu.Unlock()
	if s.parkings == nil {
		s.parkings = map[string]*parking{}
	}
	p := s.parkings[group]
	if p == nil {
		p = &parking{store: s.parkStore, group: group, logger: s.logger, timeout: s.failurePathTimeout, keys: map[string]parked{}}
		s.parkings[group] = p
	}
	return p
}

// load replaces the cache with what the store holds, keeping what this
// process parked while the store was being read: the list may predate it.
func (p *parking) load(ctx context.Context) error {
	p.mu.RLock()
	since := p.gen
	p.mu.RUnlock()
	ctx, cancel := p.bounded(ctx)
	defer cancel()
	list, err := p.store.List(ctx, p.group)
	if err != nil {
		return fmt.Errorf("service: load parked keys of group %q: %w", p.group, err)
	}
	keys := make(map[string]parked, len(list))
	for _, k := range list {
		keys[k.Key] = parked{first: k.MessageID}
	}
	p.mu.Lock()
	for k, e := range p.keys {
		if e.gen > since {
			keys[k] = e
		}
	}
	p.keys = keys
	p.mu.Unlock()
	return nil
}

// check reports whether a message id of key must follow the key's first
// dead letter (parked), and whether it is that first one coming back (head).
func (p *parking) check(ctx context.Context, key, id string) (first string, parked, head bool, err error) {
	p.mu.RLock()
	e, ok := p.keys[key]
	p.mu.RUnlock()
	switch {
	case !ok:
		return "", false, false, nil
	case id == e.first:
		return e.first, false, true, nil
	}
	// Confirm with the store: an operator may have released the key.
	ctx, cancel := p.bounded(ctx)
	defer cancel()
	first, ok, err = p.store.Lookup(ctx, p.group, key)
	if err != nil {
		return "", false, false, fmt.Errorf("parked keys: lookup %q: %w", key, err)
	}
	if !ok {
		p.forgetIf(key, e.gen)
		return "", false, false, nil
	}
	return first, id != first, id == first, nil
}

// park parks key behind id, before its dead letter is published.
func (p *parking) park(ctx context.Context, key, id string) error {
	ctx, cancel := p.bounded(ctx)
	defer cancel()
	first, err := p.store.Park(ctx, p.group, key, id)
	if err != nil {
		return fmt.Errorf("parked keys: park %q: %w", key, err)
	}
	p.mu.Lock()
	p.gen++
	p.keys[key] = parked{first: first, gen: p.gen}
	p.mu.Unlock()
	return nil
}

// release unparks key.
func (p *parking) release(ctx context.Context, key string) error {
	ctx, cancel := p.bounded(ctx)
	defer cancel()
	if err := p.store.Release(ctx, p.group, key); err != nil {
		return fmt.Errorf("parked keys: release %q: %w", key, err)
	}
	p.forget(key)
	return nil
}

// bounded gives a store call its deadline.
func (p *parking) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, p.timeout)
}

func (p *parking) forget(key string) {
	p.mu.Lock()
	p.gen++
	delete(p.keys, key)
	p.mu.Unlock()
}

// forgetIf forgets key unless it was parked again after change gen (by
// another subscription of the group, while the store was being asked).
func (p *parking) forgetIf(key string, gen uint64) {
	p.mu.Lock()
	if e, ok := p.keys[key]; ok && e.gen <= gen {
		delete(p.keys, key)
	}
	p.mu.Unlock()
}

// refresh reloads the cache every parkRefresh until ctx is done.
func (p *parking) refresh(ctx context.Context) {
	t := time.NewTicker(parkRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.load(ctx); err != nil && ctx.Err() == nil {
				p.logger.Warn("could not refresh parked keys", slog.String("group", p.group), slog.Any("error", err))
			}
		}
	}
}

// beforeDeadLetter is the DeadLetter hook that parks a message's key
// before its dead letter goes out, for handlers with dead_letter_order: key.
func (s *Service) beforeDeadLetter(h *handler) func(context.Context, *middleware.Delivery, failure.Reason) error {
	if h.policy.DeadLetterOrder != DeadLetterOrderKey {
		return nil
	}
	p := s.parkingFor(h.info.Group)
	return func(ctx context.Context, d *middleware.Delivery, reason failure.Reason) error {
		if d.Envelope.Key == "" || reason == failure.ReasonKeyParked {
			return nil
		}
		return p.park(ctx, d.Envelope.Key, d.Msg.UUID)
	}
}

// parkedChain dead-letters a message of a parked key behind first.
func (s *Service) parkedChain(h *handler, key, first string) middleware.Handler {
	err := failure.WithReason(failure.ReasonKeyParked, fmt.Errorf(
		"key %q of group %q is parked behind dead letter %s: replay that one first (then this one), or release the key",
		key, h.info.Group, first))
	return s.buildChain(h, func(_ context.Context, d *middleware.Delivery) error {
		d.Msg.Metadata[header.DeadLetterParkedBehind] = first
		return err
	})
}

// ReleaseKey unparks key of group: its later messages are handled again
// instead of following its dead letters. Replaying the key's first dead
// letter successfully releases it too.
func (s *Service) ReleaseKey(ctx context.Context, group, key string) error {
	return s.parkingFor(s.namespace+group).release(ctx, key)
}

// ParkedKeys lists the parked keys of group ("" for every group). Groups
// are given and returned as the handlers declare them, without the
// service's namespace, so a listed key can be passed to ReleaseKey as it is.
// A store shared with services of other namespaces lists only this one's.
func (s *Service) ParkedKeys(ctx context.Context, group string) ([]park.Key, error) {
	if group != "" {
		group = s.namespace + group
	}
	keys, err := s.parkStore.List(ctx, group)
	if err != nil || s.namespace == "" {
		return keys, err
	}
	own := keys[:0]
	for _, k := range keys {
		if g, ok := strings.CutPrefix(k.Group, s.namespace); ok {
			k.Group = g
			own = append(own, k)
		}
	}
	return own, nil
}
