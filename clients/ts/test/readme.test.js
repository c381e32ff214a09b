/** The README's "TypeScript client" example, as printed, against the test broker. */

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import { BROKER_URL, client, needsBroker } from "./helpers.js";

const here = dirname(fileURLToPath(import.meta.url));

test("the README's example runs as printed", needsBroker, async () => {
  const readme = readFileSync(join(here, "..", "..", "..", "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## TypeScript client"), readme.indexOf("## AG-UI"));
  const printed = section.split("```ts\n")[1].split("```")[0];
  const source = pathToFileURL(join(here, "..", "src", "index.js")).href;
  const code = printed
    .replace('"interrupt-broker-client"', JSON.stringify(source))
    .replace("http://127.0.0.1:8000", BROKER_URL)
    .replace("ibk_…", "unused");
  const file = join(mkdtempSync(join(tmpdir(), "readme-")), "example.mjs");
  writeFileSync(file, `${code}\nexport { run };\n`);
  const { run } = await import(pathToFileURL(file).href);
  const done = await client().runs.get(run.run_id);
  assert.equal(done.status, "succeeded");
  assert.match(done.output.final_message, /Ada/);
});
