/** Safe retries: a start and an answer whose responses are lost, or refused with a 503,
 * are sent again with the same Idempotency-Key and taken once. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Retry } from "../src/index.js";
import { client, faultyFetch, finished, needsBroker, paused } from "./helpers.js";

test("a start and an answer survive a lost response and a 503", needsBroker, async () => {
  const writes = faultyFetch((r) => r.method === "POST");
  const c = client({ fetch: writes.fetch, retry: new Retry({ attempts: 5, backoffMs: 10 }) });
  const thread = `t-${crypto.randomUUID().slice(0, 8)}`;
  writes.refuse = 1;
  writes.lose = 1;
  const run = await c.runs.start("counter", {}, { threadId: thread });
  const listed = await c.runs.list({ threadId: thread });
  assert.deepEqual(listed.items.map((r) => r.run_id), [run.run_id]);

  const question = await paused(c, run.run_id);
  writes.refuse = 1;
  writes.lose = 1;
  const got = await c.interrupts.resolve(question.id, true);
  assert.equal(got.status, "resolved");
  assert.equal(await finished(c, run.run_id), "succeeded");
  const outcomes = (await c.interrupts.audit(question.id)).map((e) => e.outcome);
  assert.equal(outcomes.filter((o) => o === "accepted").length, 1);

  const answers = writes.seen.filter((r) => r.url.pathname.endsWith("/resolve"));
  assert.equal(answers.length, 3);
  assert.equal(new Set(answers.map((r) => r.headers.get("idempotency-key"))).size, 1);
  const starts = writes.seen.filter((r) => r.url.pathname === "/runs");
  assert.equal(starts.length, 3);
  assert.equal(new Set(starts.map((r) => r.headers.get("idempotency-key"))).size, 1);
});

test("a write without a key is not sent again after a lost response", needsBroker, async () => {
  const writes = faultyFetch((r) => r.url.pathname.endsWith("/cancel"));
  const c = client({ fetch: writes.fetch, retry: new Retry({ backoffMs: 10 }) });
  const run = await c.runs.start("counter");
  await paused(c, run.run_id);
  writes.lose = 1;
  await assert.rejects(c.runs.cancel(run.run_id), TypeError);
  assert.equal(writes.seen.length, 1);
  assert.equal(await finished(c, run.run_id), "cancelled");
});

test("a 503 that lasts is thrown as Unavailable once the attempts are used", needsBroker, async () => {
  const reads = faultyFetch((r) => r.url.pathname === "/agents");
  const c = client({ fetch: reads.fetch, retry: { attempts: 2, backoffMs: 1 } });
  reads.refuse = 5;
  await assert.rejects(c.agents.list(), (error) => {
    assert.equal(error.name, "Unavailable");
    assert.equal(error.status, 503);
    assert.equal(error.retryAfterS, 0);
    return true;
  });
  assert.equal(reads.seen.length, 2);
});
