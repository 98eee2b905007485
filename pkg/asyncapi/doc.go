// Package asyncapi writes an AsyncAPI 3.0 document of a Switchyard
// application from its event-flow graph, so that teams on other stacks
// read the contract the code really has: which topics exist, who consumes
// and who may publish what, the payload schemas of the Go event types and
// the header contract every message carries.
//
//	doc, err := asyncapi.Generate(svc.Graph(), cfg.AsyncAPI("1.4.0")) // cfg: config.Config
//	mux.Handle("GET /asyncapi.json", asyncapi.Handler(doc))
//
// config.Config.AsyncAPI fills [Config] with the configured broker's
// servers and layout; without it the document has no servers or bindings.
// `switchyard graph --format asyncapi` writes the same document from a
// topology file ([graph.WriteJSON]) and the configuration.
//
// # What is in the document
//
//   - channels: one per topic, its address the topic (namespace included).
//     On RabbitMQ the topic's channel is its durable fanout exchange, and
//     every consumer group has a channel of its own for its queue
//     (queue_prefix + topic + "." + group), as adapters/amqp declares them.
//   - operations: a receive per handler (its Kafka binding names the
//     consumer group) and a send per event type a handler declared with
//     service.Publishes. Events published outside handlers have no
//     operation, but their messages are on the channels that carry them.
//   - messages: one per event type, its payload the JSON Schema of the Go
//     type (package eventschema; nested types under components/schemas),
//     its headers the header contract (package header) with ce_type fixed
//     to the event type, its correlation id the ce_correlationid header
//     and, for keyed events on Kafka, the record key as the partition key.
//   - servers: those of [Config.Servers]; none for the in-memory broker.
//
// # Determinism
//
// The same graph and configuration give the same bytes: objects are
// written with sorted keys and lists in the graph's order (by name), so the
// document can be committed and diffed.
package asyncapi
