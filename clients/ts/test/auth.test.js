/** With auth on (a second broker pytest started: BROKER_AUTH=on, an API process and no
 * worker): the client sends its API key on REST, on a run's SSE and on the WebSocket; a
 * key lacking a scope gets `Forbidden` with the broker's code; the open routes need no
 * key, and not being ready (no worker) is an answer, not an error. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Forbidden, Unauthorized } from "../src/index.js";
import { client, collect } from "./helpers.js";

const URL_ = process.env.AUTH_BROKER_URL ?? "";
/** @type {Record<"full" | "reader" | "writer" | "limited", string>} */
const KEYS = JSON.parse(process.env.AUTH_KEYS ?? "{}");
const needsAuthBroker = URL_ ? {} : { skip: "AUTH_BROKER_URL is not set (tests/test_ts_client.py sets it)" };

/** @param {string} [apiKey] */
const as = (apiKey) => client(apiKey ? { apiKey, retry: { attempts: 1 } } : { retry: { attempts: 1 } }, URL_);

/** The first event of a follower, then it is closed. @param {AsyncIterable<any>} events */
async function first(events) {
  for await (const event of events) return event;
  throw new Error("the stream ended with no event");
}

/** A rejection with the error class and code. @param {Promise<unknown>} promise @param {Function} Cls @param {string} code */
function refused(promise, Cls, code, scope = undefined) {
  return assert.rejects(promise, (error) => {
    assert.ok(error instanceof Cls, String(error));
    assert.equal(error.code, code);
    if (scope) assert.equal(error.details.scope, scope);
    return true;
  });
}

test("the API key goes on REST, SSE and the WebSocket", needsAuthBroker, async () => {
  const full = as(KEYS.full);
  const none = as();
  assert.ok((await full.agents.list()).some((a) => a.agent_id === "counter"));
  await refused(none.agents.list(), Unauthorized, "unauthorized");

  const run = await full.runs.start("counter");
  assert.equal((await full.runs.get(run.run_id)).status, "queued");
  assert.equal((await first(full.runs.events(run.run_id))).type, "run.queued");
  assert.equal((await first(full.follow({ runId: run.run_id, after: "0" }))).type, "run.queued");

  await refused(collect(none.runs.events(run.run_id)), Unauthorized, "unauthorized");
  await refused(collect(none.follow({ runId: run.run_id, after: "0" })), Unauthorized, "unauthorized");
  await refused(as("ibk_not-a-key-of-this-broker").runs.get(run.run_id), Unauthorized, "unauthorized");
  await full.runs.cancel(run.run_id);
});

test("a key lacking a scope gets Forbidden with the broker's code", needsAuthBroker, async () => {
  const reader = as(KEYS.reader);
  const writer = as(KEYS.writer);
  const run = await writer.runs.start("counter");
  assert.equal((await reader.runs.get(run.run_id)).run_id, run.run_id);

  await refused(reader.runs.start("counter"), Forbidden, "forbidden", "runs:write");
  await refused(reader.runs.cancel(run.run_id), Forbidden, "forbidden", "runs:write");
  await refused(reader.webhooks.list(), Forbidden, "forbidden", "admin");
  await refused(collect(reader.agui.run("counter", { threadId: crypto.randomUUID() })), Forbidden, "forbidden", "runs:write");

  await refused(writer.runs.get(run.run_id), Forbidden, "forbidden", "interrupts:read");
  await refused(collect(writer.runs.events(run.run_id)), Forbidden, "forbidden", "interrupts:read");
  await refused(collect(writer.follow({ runId: run.run_id })), Forbidden, "forbidden");

  // metrics count every agent: a key limited to some may not read them
  await refused(as(KEYS.limited).metrics(), Forbidden, "forbidden");
  assert.match(await as(KEYS.full).metrics(), /^broker_runs\{status="queued"\} [1-9]/m);
  await writer.runs.cancel(run.run_id);
});

test("the open routes need no key; not ready is an answer", needsAuthBroker, async () => {
  const none = as();
  assert.deepEqual(await none.health(), { status: "ok" });
  const ready = await none.ready();
  assert.equal(ready.status, "not_ready");
  assert.deepEqual(ready.checks, { redis: "ok", workers: 0 });
  assert.deepEqual(await none.authConfig(), { oidc: null });
  assert.ok((await none.receiptKeys()).keys.length >= 1);
});
