// A kafkajs producer with default settings sending `events` to `topic` in
// one of three styles, then exiting:
//
//   plain       the style of services that know nothing of CloudEvents:
//               key = aggregate id, value = JSON, headers eventType,
//               correlationId and timestamp (ms since the epoch)
//   binary      a CloudEvent from the CloudEvents SDK, Kafka binding,
//               binary content mode (ce_* headers)
//   structured  the same in structured content mode (the whole event as
//               JSON in the value, content-type application/cloudevents+json)
//
// settings: {brokers: [..], topic, mode, source, events: [{id, type,
// aggregateId, correlationId, time, body}], timeoutMs}
// Prints {"sent": n}.
import { Kafka } from "kafkajs";
import { CloudEvent, Kafka as CEKafka } from "cloudevents";
import { settings, emit, kafkaLogCreator, kafkaLogLevel } from "./lib.mjs";

const kafka = new Kafka({ clientId: "interop-producer", brokers: settings.brokers, logLevel: kafkaLogLevel, logCreator: kafkaLogCreator });
const producer = kafka.producer();
await producer.connect();

function toMessage(e) {
  if (settings.mode === "plain") {
    const headers = { timestamp: (e.time ? Date.parse(e.time) : Date.now()).toString() };
    if (e.type) headers.eventType = e.type;
    if (e.correlationId) headers.correlationId = e.correlationId;
    return { key: e.aggregateId, value: JSON.stringify(e.body), headers };
  }
  const ce = new CloudEvent({
    id: e.id,
    type: e.type,
    source: settings.source ?? "/interop/kafkajs",
    time: e.time,
    datacontenttype: "application/json",
    data: e.body,
    partitionkey: e.aggregateId,
    ...(e.correlationId ? { correlationid: e.correlationId } : {}),
  });
  const m = settings.mode === "structured" ? CEKafka.structured(ce) : CEKafka.binary(ce);
  const value = typeof m.value === "string" || Buffer.isBuffer(m.value) ? m.value : JSON.stringify(m.value);
  // The binding lists unset attributes too; kafkajs rejects undefined header values.
  const headers = {};
  for (const [k, v] of Object.entries(m.headers)) if (v !== undefined && v !== null) headers[k] = String(v);
  return { key: m.key, value, headers, timestamp: m.timestamp };
}

await producer.send({ topic: settings.topic, messages: settings.events.map(toMessage) });
await producer.disconnect();
await emit({ sent: settings.events.length });
