// Package idempotency records which messages were handled, so that a
// redelivered message (at-least-once delivery) is not handled twice.
//
// # Claims, not flags
//
// A "seen" flag checked before handling and set after is wrong under
// concurrent redelivery: two instances handling the same message at once
// both see "not seen" and both run the effects. A [Store] hands out claims
// instead: [Store.Claim] takes a key under a lease, and of concurrent
// claims for one key only one succeeds. The winner runs the handler, then
// calls [Store.Complete] on success or [Store.Release] on failure, so that
// a retry can claim the key again. A claim whose holder died ends with its
// lease and can then be taken over.
//
// # Stores
//
// [Memory] is bounded (MaxEntries, oldest completed keys forgotten first)
// and forgets completed keys after a TTL; it dedupes within one process.
// adapters/postgres provides a durable store shared by every instance, and
// a transactional middleware that commits the dedupe record in the same
// transaction as the handler's own writes (exactly-once effects).
//
// # Usage
//
// The runtime uses a store through
// [github.com/switchyard-go/switchyard/pkg/service.WithIdempotency]:
//
//	store, err := idempotency.NewMemory(idempotency.MemoryConfig{MaxEntries: 50_000, TTL: time.Hour})
//	if err != nil {
//		return err
//	}
//	svc := service.New(b, service.WithIdempotency(store,
//		// dedupe on the order, not the message id
//		service.IdempotencyKey(func(d *middleware.Delivery) string { return "order/" + d.Envelope.Key }),
//	))
//
// A duplicate is acked without running the handler and counted as
// metrics.Recorder.Duplicate. What happens to a key in progress elsewhere
// or a failing store is described at
// [github.com/switchyard-go/switchyard/pkg/middleware.Idempotency].
package idempotency
