// An amqplib consumer: binds an exclusive queue of its own to the topic's
// fanout exchange (as the article's pub/sub subscribers do), prints
// {"ready": true}, then prints `count` messages: properties, headers, body,
// and the CloudEvent built from the headers with prefix `prefix` (binary
// mode) or from the body (structured mode), validated by the CloudEvents
// SDK.
//
// settings: {url, exchange, count, prefix, timeoutMs}
import amqp from "amqplib";
import { CloudEvent } from "cloudevents";
import { settings, emit, headerStrings } from "./lib.mjs";

const conn = await amqp.connect(settings.url);
const ch = await conn.createChannel();
await ch.assertExchange(settings.exchange, "fanout", { durable: true });
const { queue } = await ch.assertQueue("", { exclusive: true });
await ch.bindQueue(queue, settings.exchange, "");

function cloudEvent(msg, headers) {
  const ct = msg.properties.contentType ?? "";
  if (ct.startsWith("application/cloudevents+json")) {
    return new CloudEvent(JSON.parse(msg.content.toString("utf8")));
  }
  const attrs = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith(settings.prefix)) attrs[k.slice(settings.prefix.length)] = v;
  }
  if (ct) attrs.datacontenttype = ct;
  const body = msg.content.toString("utf8");
  attrs.data = ct.startsWith("application/json") ? JSON.parse(body) : body;
  return new CloudEvent(attrs); // strict: validates
}

let seen = 0;
await ch.consume(queue, async (msg) => {
  if (!msg) return;
  const headers = headerStrings(msg.properties.headers);
  const { headers: _h, ...properties } = msg.properties;
  const out = { properties, headers, body: msg.content.toString("utf8") };
  try {
    out.cloudevent = cloudEvent(msg, headers).toJSON();
  } catch (err) {
    out.cloudeventError = String(err?.message ?? err) + (err?.errors ? " " + JSON.stringify(err.errors) : "");
  }
  ch.ack(msg);
  await emit(out);
  if (++seen === settings.count) {
    await ch.close();
    await conn.close();
    process.exit(0);
  }
});
await emit({ ready: true });
