// Shared by the interop scripts: settings in, JSON lines out.
//
// Each script takes its settings as one JSON argument and writes one JSON
// object per line on stdout; logs go to stderr. A script that does not
// finish within its settings' timeoutMs (default 60s) fails.
import { logLevel } from "kafkajs";

export const settings = JSON.parse(process.argv[2] ?? "{}");

const timer = setTimeout(() => fail(new Error(`timed out after ${settings.timeoutMs ?? 60000}ms`)), settings.timeoutMs ?? 60000);
timer.unref();

// emit writes one line and resolves once it is handed to the pipe, so that
// exiting afterwards loses nothing.
export function emit(obj) {
  return new Promise((resolve, reject) =>
    process.stdout.write(JSON.stringify(obj) + "\n", (err) => (err ? reject(err) : resolve())));
}

export function fail(err) {
  process.stderr.write(`${process.argv[1]}: ${err?.stack ?? err}\n`);
  process.exit(1);
}

process.on("unhandledRejection", fail);
process.on("uncaughtException", fail);

// kafkajs logs to stdout by default; keep stdout for results.
export const kafkaLogCreator = () => ({ namespace, level, label, log }) => {
  const { message, ...extra } = log;
  process.stderr.write(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`);
};
export const kafkaLogLevel = logLevel.WARN;

// headerStrings turns kafkajs or amqplib header values into strings.
export function headerStrings(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined || v === null) continue;
    out[k] = Buffer.isBuffer(v) ? v.toString("utf8") : Array.isArray(v) ? v.map(String).join(",") : String(v);
  }
  return out;
}
