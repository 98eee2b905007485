// Package conformance proves that a service's handlers and policies behave
// the same on every broker: it runs scripted scenarios, through the public
// API only, on each broker a [Suite] names, as subtests
// "<broker>/<scenario>", and logs per broker which held and which differed.
// Users run it in their CI against their own RabbitMQ and Kafka; Switchyard
// runs its own cross-broker suite (internal/e2e) on it.
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Suite{
//			Define: register, // func(*service.Service) error, as in main
//			Input: func(key string, n int) event.Event {
//				return payments.PaymentRequested{PaymentID: fmt.Sprintf("%s-%d", key, n), AmountCents: 100}
//			},
//			Brokers: []conformance.Broker{
//				conformance.Memory(memory.Config{}),
//				conformance.FromConfig("kafka", func(tb testing.TB) config.Config { ... }),
//			},
//		})
//	}
//
// # Scenarios
//
// Every scenario starts its own service instances (Define on a new
// service), in a namespace of its own, with a [switchyardtest.Probe] in each
// that records every attempt and can fail or hold attempts on purpose. The
// handlers that consume the input type are the scenario's consumer groups.
//
//   - delivery_to_each_group: every group handles every input, once.
//   - competing_consumers: two instances; within a group each input is
//     handled once, by one of them (on Kafka after the group settled).
//   - order_per_key: inputs of a key are handled one at a time, in publish
//     order, by every group, while keys interleave.
//   - retry_then_success: a transient failure injected before the handler
//     (up to two, within max_attempts) is retried until the handler runs and
//     succeeds; nothing is dead-lettered or nacked.
//   - permanent_error_dead_letter: an injected permanent failure is
//     dead-lettered at once with reason, error, handler, group, topic,
//     attempts, failure times, the original payload and headers, read back
//     from the broker; other groups handle the input as usual;
//     [Suite.Poison] inputs are refused by the handlers themselves.
//   - idempotent_redelivery: the same message delivered again (same id)
//     causes no further events.
//   - graceful_shutdown_mid_handler: an instance stopped while a handler runs
//     lets it finish with its context intact and acks it; a new instance
//     handles the rest; nothing is handled twice.
//   - cloudevents_interop: the service's messages carry the CloudEvents
//     binary-mode attributes; a producer that writes only those is understood.
//   - correlation_causation: every event an input causes carries its
//     correlation id, names its cause and counts one more hop.
//
// [Suite.Extra] adds scenarios of your own, written with [Env].
//
// # What it cannot see
//
// Effects outside the service (a database row, an email) are the handlers'
// own: idempotent_redelivery judges by the events the service publishes in
// consequence and its handlers receive. Time is real on every broker: retry
// waits take what the handlers' policies say.
package conformance
