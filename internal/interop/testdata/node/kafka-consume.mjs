// A kafkajs consumer with default settings (no compression codec plugins)
// that reads `count` records of `topic` from the beginning and prints each:
// key, value, headers, and the event the CloudEvents SDK's Kafka binding
// reads from it (or why it could not).
//
// settings: {brokers: [..], topic, groupId, count, timeoutMs}
import { Kafka } from "kafkajs";
import { Kafka as CEKafka } from "cloudevents";
import { settings, emit, fail, headerStrings, kafkaLogCreator, kafkaLogLevel } from "./lib.mjs";

const kafka = new Kafka({ clientId: "interop-consumer", brokers: settings.brokers, logLevel: kafkaLogLevel, logCreator: kafkaLogCreator });
const consumer = kafka.consumer({ groupId: settings.groupId });
// A record batch kafkajs cannot decode (e.g. snappy without a plugin)
// crashes the consumer: report it instead of retrying forever.
consumer.on(consumer.events.CRASH, (e) => fail(e.payload.error));

await consumer.connect();
await consumer.subscribe({ topic: settings.topic, fromBeginning: true });
let seen = 0;
await consumer.run({
  eachMessage: async ({ topic, partition, message }) => {
    const headers = headerStrings(message.headers);
    const out = {
      topic,
      partition,
      offset: message.offset,
      key: message.key ? message.key.toString("utf8") : null,
      value: message.value ? message.value.toString("utf8") : null,
      headers,
    };
    try {
      const ce = CEKafka.toEvent({ key: out.key, value: out.value, headers });
      ce.validate();
      out.cloudevent = ce.toJSON();
    } catch (err) {
      out.cloudeventError = String(err?.message ?? err) + (err?.errors ? " " + JSON.stringify(err.errors) : "");
    }
    await emit(out);
    if (++seen === settings.count) process.exit(0);
  },
});
