// Package schedule publishes events later, behind [service.Service.PublishAt]
// and [service.Service.PublishAfter], so that every consumer group of the
// event's topic receives it once due, on every broker. Two schedulers:
// [Scheduler] keeps due times in a [Store] (memory or PostgreSQL; cancel
// supported) and its relay publishes what is due; [OnBroker] keeps them in
// the broker's own delay machinery ([broker.Delayer]; durable as the
// broker, no cancel).
//
//	store := schedule.NewMemory()                 // or postgres.NewSchedule(pool, ...)
//	sch := schedule.New(store, schedule.Config{})
//	svc := service.New(b, service.WithScheduler(sch), service.WithCompanion(sch))
//	id, err := svc.PublishAfter(ctx, PaymentDue{OrderID: "o-1"}, 15*time.Minute)
//	...
//	err = svc.CancelScheduled(ctx, id)
//
// # Guarantees of the store-backed Scheduler
//
//   - Never early: a message is published only once the relay's clock has
//     passed its due time. It may be late by up to [Config.PollInterval]
//     plus the publish, and by however long the service or the broker is down.
//   - At least once: an entry leaves the store only after the broker
//     confirmed its publish. A relay that dies between the two (kill -9)
//     leaves the entry claimed; once its lease ([Config.Lease]) has passed
//     another relay (or the restarted one) publishes it again, with the
//     same message id, so idempotent consumers see it once.
//   - Durable as the store: [Memory] keeps entries in the process (lost on
//     exit, for tests and the quick start); the PostgreSQL store of package
//     adapters/postgres keeps them in a table, so a scheduled message
//     survives a restart of the service and of the broker (the relay keeps
//     retrying until the broker is back), on RabbitMQ and Kafka alike.
//   - Several relays (one per service instance) may share one PostgreSQL
//     store: each due entry is claimed by one of them at a time.
//   - Cancel: both stores take back an entry that is not claimed for
//     publishing yet ([Store.Cancel]).
//
// [OnBroker] keeps none of the store's promises on cancel, and is late by
// the broker's delay tiers (never early). docs/scheduling.md compares them.
package schedule
