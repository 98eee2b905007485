// Package switchyardtest is a test kit for Switchyard services, in the
// spirit of zaptest: it runs your handlers on the in-memory broker with a
// fake clock and answers what happened, typed.
//
//	h := switchyardtest.Start(t, register) // register: func(*service.Service) error
//	h.Send(payments.PaymentRequested{ID: "p-1", AmountCents: 500},
//		switchyardtest.From("checkout"), switchyardtest.WithCorrelationID("order-7"))
//	got := switchyardtest.WaitFor(h, func(m switchyardtest.Message[payments.PaymentCaptured]) bool {
//		return m.Event.PaymentID == "p-1"
//	})
//	if got.Envelope.CorrelationID != "order-7" { ... }
//
// # What the harness does
//
// [Start] creates an in-memory broker (adapters/memory) and a service on it
// with your options, calls your define function to register handlers, runs
// it and waits until it is subscribed. The test's cleanup calls
// [Harness.Stop], which shuts the service down gracefully, closes the broker
// and fails the test if goroutines started since Start still run (goleak).
//
// Everything the service publishes goes through a recording publisher, and
// a [Probe] sits in the middleware stack of every handler, inside Retry: it
// records every attempt (the delivered envelope, headers, payload, the
// attempt number and the error) and counts the runtime's metrics events per
// handler. The queries read those records:
//
//   - [Published] and [WaitFor]: events of type T the service published;
//   - [Handled]: events of type T a handler handled successfully;
//   - [Harness.DeadLetters] and [Harness.WaitDeadLetter]: what was given up
//     on, with reason, error, handler, group, attempts and failure times;
//   - [Harness.Counts]: handled, retried, dead-lettered, nacked and
//     duplicates skipped, per handler;
//   - [Harness.Attempts]: every attempt, in order.
//
// Waits ([Harness.WaitIdle], [WaitFor], [Harness.Eventually]) re-check
// their condition whenever something is recorded and give up after a
// deadline ([Timeout], default 10s); their failure messages end with the
// journal of what did happen ([Harness.Journal]).
//
// # Time
//
// The harness clock ([Clock]) is the service's clock (retry backoffs, the
// failure times of dead letters, event times) and holds the broker's delayed
// retries: adapters/memory has no clock option (its delays run on
// time.AfterFunc), so the harness's broker waits on the fake clock before
// handing a delayed message to the memory broker. By default the clock jumps
// through every wait at once, so a retry policy of seconds or minutes runs
// in microseconds; [ManualClock] makes it stand still until
// [Clock.Advance]. Handler timeouts, the memory broker's nack backoff (1ms
// in the harness) and the dispatcher's fences use real time.
//
// # Other services
//
// [Harness.Send] publishes an event as another service would, with its own
// source, id, correlation id, key, version or headers; [Harness.SendRaw]
// publishes any payload and headers, for malformed messages.
//
// Package conformance runs the same handlers on real brokers, with scripted
// scenarios, through the same [Probe].
package switchyardtest
