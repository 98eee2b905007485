package idempotency

import (
	"context"
	"errors"
	"time"
)

// State is what [Store.Claim] found for a key.
type State int

const (
	// Claimed: the caller now holds the key until its lease ends and must
	// run the handler, then call [Store.Complete] or [Store.Release].
	Claimed State = iota + 1
	// Completed: the key was handled before; the delivery is a duplicate.
	Completed
	// InProgress: another caller holds an unexpired lease on the key; the
	// delivery must be retried later, not handled now and not dropped.
	InProgress
)

func (s State) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case Completed:
		return "completed"
	case InProgress:
		return "in_progress"
	}
	return "unknown"
}

// Claim is the outcome of [Store.Claim].
type Claim struct {
	State State
	// Token identifies this claim; pass it to Complete and Release so that
	// a caller whose lease expired cannot complete or release someone
	// else's claim. Set when State is Claimed.
	Token string
	// Until is when the lease ends: the caller's (Claimed) or the other
	// holder's (InProgress). Zero otherwise.
	Until time.Time
}

// Store records which keys were handled. Implementations must be safe for
// concurrent use by several goroutines and, for durable stores, several
// processes: of concurrent Claim calls for one key, at most one returns
// Claimed while its lease lasts.
type Store interface {
	// Claim takes key for lease, unless it is completed (Completed) or
	// claimed by someone else whose lease has not ended (InProgress). A
	// claim whose lease ended may be taken over: its holder is presumed dead.
	Claim(ctx context.Context, key string, lease time.Duration) (Claim, error)
	// Complete marks a claimed key as handled, for as long as the store
	// keeps completed keys. It returns [ErrLeaseLost] if token no longer
	// holds the key.
	Complete(ctx context.Context, key, token string) error
	// Release gives a claimed key up after a failure so that a retry can
	// claim it at once. It returns [ErrLeaseLost] if token no longer holds
	// the key (then nothing is changed).
	Release(ctx context.Context, key, token string) error
}

// Extender is implemented by stores whose claims can be extended while the
// handler still runs, so that a handler slower than its lease is not
// handled a second time meanwhile. The idempotency middleware renews the
// lease of every claim it holds on such a store.
type Extender interface {
	// Extend sets the lease of a claimed key to end lease from now and
	// returns when it ends. It returns [ErrLeaseLost] if token no longer
	// holds the key.
	Extend(ctx context.Context, key, token string, lease time.Duration) (time.Time, error)
}

// ErrLeaseLost is returned by Complete and Release when the claim's lease
// ended and the key was taken over or forgotten meanwhile.
var ErrLeaseLost = errors.New("idempotency: lease lost")

// Clock is the time source of a store; tests inject a fake.
// [github.com/switchyard-go/switchyard/pkg/middleware.Clock] satisfies it.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
