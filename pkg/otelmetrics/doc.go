// Package otelmetrics gives a service OpenTelemetry metrics with the
// messaging semantic-convention names, exported to Prometheus (on the
// operations server's /metrics, see package ops) and to an OpenTelemetry
// collector over OTLP (gRPC or HTTP), as the metrics section of a
// configuration file chooses:
//
//	metrics:
//	  exporters: [prometheus, otlp]
//	  otlp: {protocol: grpc, endpoint: "collector:4317", insecure: true}
//
// In code: svc := service.New(b, otelmetrics.With(cfg, otelmetrics.WithRegisterer(srv.Registry()))).
//
// # Instruments
//
//   - messaging.client.sent.messages (counter, {message}): events
//     published and confirmed by the broker; messaging.system,
//     messaging.destination.name, messaging.operation.name "send",
//     cloudevents.event_type.
//   - messaging.client.consumed.messages (counter, {message}): deliveries
//     taken from the broker, one per delivery whatever the attempts;
//     messaging.system, messaging.destination.name,
//     messaging.consumer.group.name, messaging.operation.name "process",
//     switchyard.handler.
//   - messaging.process.duration (histogram, s): from delivery to its
//     outcome, in-process retries included; the same attributes, plus
//     error.type when the delivery was not handled: "dead_lettered" or
//     "nacked".
//   - switchyard.retries (counter, {attempt}), switchyard.dead_letters
//     (counter, {message}, with switchyard.dead_letter.reason),
//     switchyard.nacks (counter, {message}), switchyard.duplicates
//     (counter, {message}): per handler, with the delivery's system,
//     destination and group when the handler has had a delivery.
//   - switchyard.in_flight (up-down counter, {message}): deliveries being
//     processed now.
//
// The Prometheus exporter writes the names the Prometheus way
// (messaging_client_sent_messages_total, messaging_process_duration_seconds,
// switchyard_in_flight_messages, ...). The switchyard_* metrics of package
// metrics stay as they are beside them.
package otelmetrics
