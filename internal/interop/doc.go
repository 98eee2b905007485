// Package interop holds the tests that judge Switchyard's interoperability
// with services that do not use it, by running those services' own clients
// against the real brokers: kafkajs, amqplib and the CloudEvents SDK for
// JavaScript, installed from npm by internal/nodetest from the committed
// testdata/node/package-lock.json.
//
// The Go side of every test is a Switchyard service using only the public
// API (pkg/service, the adapters, config). The tests run in `make test`;
// without a broker, or without Node.js, they skip, except under CI=true,
// where they fail.
package interop
