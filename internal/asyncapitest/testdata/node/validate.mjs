// Validates AsyncAPI documents with the official parser (@asyncapi/parser,
// the one AsyncAPI Studio and the CLI use): the JSON Schema of the spec,
// the bindings' schemas and the spec's own rules (references resolve,
// operations use their channel's messages, ...).
//
// Argument: {"files": ["/abs/doc.json", ...]}. Output: one line per file,
// {"file", "errors": [...], "warnings": [...]}, each diagnostic as
// {code, message, path}. Severity 0 is an error, 1 a warning.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const { files } = JSON.parse(process.argv[2]);
const parser = new Parser();
for (const file of files) {
  const text = await readFile(file, "utf8");
  const { diagnostics } = await parser.parse(text);
  const pick = (sev) =>
    diagnostics
      .filter((d) => d.severity === sev)
      .map((d) => ({ code: String(d.code), message: d.message, path: d.path.join("/") }));
  process.stdout.write(JSON.stringify({ file, errors: pick(0), warnings: pick(1) }) + "\n");
}
