/** Agents and runs: start (with an Idempotency-Key), get, list and every page, cancel. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Conflict, InvalidInput, NotFound } from "../src/index.js";
import { client, collect, finished, needsBroker, paused } from "./helpers.js";

test("agents are listed and a run is started once per key", needsBroker, async () => {
  const c = client();
  const agents = (await c.agents.list()).map((a) => a.agent_id);
  assert.ok(agents.includes("counter") && agents.includes("naming"), agents.join());

  const key = crypto.randomUUID();
  const input = { messages: [{ role: "user", content: "hi" }] };
  const run = await c.runs.start("naming", input, { idempotencyKey: key, metadata: { from: "ts" } });
  assert.deepEqual(await c.runs.start("naming", input, { idempotencyKey: key, metadata: { from: "ts" } }), run);
  assert.equal(run.status, "queued");
  const got = await c.runs.get(run.run_id);
  assert.equal(got.agent_id, "naming");
  assert.deepEqual(got.metadata, { from: "ts" });
  await c.runs.cancel(run.run_id);
});

test("runs are listed a page at a time and iterated across pages", needsBroker, async () => {
  const c = client();
  const thread = `t-${crypto.randomUUID().slice(0, 8)}`;
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await c.runs.start("counter", undefined, { threadId: `${thread}-${i}` }));
  for (const r of runs) await paused(c, r.run_id);

  const first = await c.runs.list({ agentId: "counter", limit: 1 });
  assert.equal(first.items.length, 1);
  assert.ok(first.nextCursor);
  const all = await collect(c.runs.iterate({ agentId: "counter", limit: 1 }));
  const ids = all.map((r) => r.run_id);
  for (const r of runs) assert.ok(ids.includes(r.run_id));
  const one = await c.runs.list({ agentId: "counter", limit: 500 });
  assert.deepEqual(ids, one.items.map((r) => r.run_id));
  const oldest = await c.runs.list({ agentId: "counter", limit: 500, order: "asc" });
  assert.deepEqual(oldest.items.map((r) => r.run_id), [...ids].reverse());
  const byThread = await c.runs.list({ threadId: `${thread}-1` });
  assert.deepEqual(byThread.items.map((r) => r.run_id), [runs[1].run_id]);

  for (const r of runs) await c.runs.cancel(r.run_id);
  assert.deepEqual(await Promise.all(runs.map((r) => finished(c, r.run_id))), ["cancelled", "cancelled", "cancelled"]);
  await assert.rejects(c.runs.cancel(runs[0].run_id), (error) => {
    assert.ok(error instanceof Conflict);
    assert.equal(error.status, 409);
    assert.equal(error.code, "run_finished");
    return true;
  });
});

test("errors carry status, code, message and details", needsBroker, async () => {
  const c = client();
  await assert.rejects(c.runs.get("no-such-run"), (error) => {
    assert.ok(error instanceof NotFound);
    assert.equal(error.status, 404);
    assert.equal(error.code, "run_not_found");
    assert.ok(error.message);
    return true;
  });
  await assert.rejects(c.runs.start("no-such-agent"), (error) => {
    assert.ok(error instanceof NotFound);
    assert.equal(error.code, "agent_not_found");
    assert.ok(Array.isArray(error.details.known_agents), JSON.stringify(error.details));
    return true;
  });
  await assert.rejects(c.runs.list({ cursor: "not-a-cursor" }), InvalidInput);
});
