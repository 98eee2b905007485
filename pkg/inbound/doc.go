// Package inbound reads events from producers that do not write
// Switchyard's header contract: services written with kafkajs, amqplib or
// anything else that sends plain JSON with a few headers of their own. A
// [Mapping], one per topic, says where each event attribute is found (a
// header, a JSON field, or one fixed value); [Mapping.Apply] rewrites a
// message into the contract, so that it then flows through the same
// runtime and middleware as any other message: typed handlers, retry,
// dead-lettering, idempotency, correlation.
//
// # The article's plain style
//
// A Node.js service publishes an order event as JSON, keyed by the order
// id, with an eventType and a correlationId header:
//
//	producer.send({topic: "orders", messages: [{
//	  key: order.id,
//	  value: JSON.stringify(order),
//	  headers: {eventType: "OrderPlaced", correlationId, timestamp: Date.now().toString()},
//	}]})
//
// Its mapping, in code or under "topics.orders.inbound" in a configuration
// file:
//
//	inbound:
//	  type: {header: eventType}
//	  types: {OrderPlaced: orders.order_placed}
//	  correlation_id: {header: correlationId}
//	  time: {header: timestamp, format: unix_ms}
//
// The id is the broker's (Kafka: topic/partition/offset, stable across
// redeliveries; RabbitMQ: the message-id property) and the key is the
// Kafka record key, unless the mapping says otherwise.
//
// # What is never guessed
//
// A message that already carries the contract (a ce_specversion header) is
// left alone, so Switchyard and foreign producers can share a topic. A
// message the mapping cannot be applied to (its type header is missing,
// its time does not parse, its payload is not JSON where a field is read)
// is left unchanged and the error names every problem: the runtime
// dead-letters it with reason "inbound_mapping".
package inbound
