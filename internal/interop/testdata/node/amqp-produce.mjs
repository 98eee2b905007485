// An amqplib producer publishing `events` to the topic's fanout exchange
// (the article's pub/sub publisher) with publisher confirms, in one of
// three styles:
//
//   plain       JSON body, persistent, messageId when the event has an id,
//               headers eventType and correlationId when given, and the
//               AMQP timestamp property
//   binary      a CloudEvent from the CloudEvents SDK as headers named with
//               `prefix` (the AMQP binding's "cloudEvents_" by default),
//               content type property = datacontenttype, body = data
//   structured  the whole CloudEvent as JSON, content type
//               application/cloudevents+json
//
// settings: {url, exchange, mode, prefix, source, events: [{id, type,
// aggregateId, correlationId, time, body}], timeoutMs}
// Prints {"sent": n}.
import amqp from "amqplib";
import { CloudEvent } from "cloudevents";
import { settings, emit } from "./lib.mjs";

const conn = await amqp.connect(settings.url);
const ch = await conn.createConfirmChannel();
await ch.assertExchange(settings.exchange, "fanout", { durable: true });

function cloudEvent(e) {
  return new CloudEvent({
    id: e.id,
    type: e.type,
    source: settings.source ?? "/interop/amqplib",
    time: e.time,
    datacontenttype: "application/json",
    data: e.body,
    partitionkey: e.aggregateId,
    ...(e.correlationId ? { correlationid: e.correlationId } : {}),
  });
}

for (const e of settings.events) {
  let body;
  const options = { persistent: true };
  if (settings.mode === "plain") {
    body = Buffer.from(JSON.stringify(e.body));
    if (e.id) options.messageId = e.id;
    options.timestamp = e.time ? Date.parse(e.time) : Date.now();
    options.headers = {};
    if (e.type) options.headers.eventType = e.type;
    if (e.correlationId) options.headers.correlationId = e.correlationId;
  } else if (settings.mode === "structured") {
    const ce = cloudEvent(e);
    body = Buffer.from(ce.toString());
    options.contentType = "application/cloudevents+json; charset=utf-8";
  } else {
    const ce = cloudEvent(e);
    const prefix = settings.prefix ?? "cloudEvents_";
    options.headers = {};
    for (const [k, v] of Object.entries(ce.toJSON())) {
      if (k === "data" || k === "data_base64" || k === "datacontenttype") continue;
      options.headers[prefix + k] = String(v);
    }
    options.contentType = ce.datacontenttype;
    body = Buffer.from(JSON.stringify(ce.data));
  }
  ch.publish(settings.exchange, "", body, options);
}
await ch.waitForConfirms();
await ch.close();
await conn.close();
await emit({ sent: settings.events.length });
