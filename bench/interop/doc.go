// Package interop holds the interoperability tests that need Watermill's own
// Kafka and RabbitMQ adapters (watermill-kafka with Sarama, watermill-amqp):
// a service on plain Watermill and a Switchyard service exchange events both
// ways on the real brokers.
//
// It lives in the bench module so that the library's go.mod does not require
// those clients; the tests that need only Node.js clients stay in the root
// module's internal/interop. Without a broker the tests skip, except under
// CI=true, where they fail (internal/brokertest decides).
package interop
