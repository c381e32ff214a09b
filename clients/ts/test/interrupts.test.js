/** Interrupts: list and every page, get with its fingerprint, audit, resolve (with
 * if-match), bulk answers, assignment and the withdrawal of a held answer. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Conflict, FingerprintMismatch, NotFound, errorForResult } from "../src/index.js";
import { UNDO_AGENT, client, collect, finished, needsBroker, paused } from "./helpers.js";

test("an interrupt is read with its fingerprint and answered once", needsBroker, async () => {
  const c = client();
  const run = await c.runs.start("naming", { messages: [{ role: "user", content: "hi" }] });
  const approval = await paused(c, run.run_id);
  const fetched = await c.interrupts.get(approval.id);
  assert.equal(fetched.interrupt.status, "pending");
  assert.equal(fetched.interrupt.type, "approval");
  assert.equal(fetched.fingerprint, fetched.interrupt.fingerprint);
  assert.equal(fetched.etag, `"${fetched.fingerprint}"`);

  await assert.rejects(c.interrupts.resolve(approval.id, true, { ifMatch: "not-this-question" }), (error) => {
    assert.ok(error instanceof FingerprintMismatch);
    assert.equal(error.status, 412);
    assert.equal(error.fingerprint, fetched.fingerprint);
    return true;
  });
  const answered = await c.interrupts.resolve(approval.id, true, {
    comment: "fine",
    resolvedBy: "alice",
    ifMatch: fetched.fingerprint ?? undefined,
  });
  assert.equal(answered.status, "resolved");
  assert.equal(answered.resolution?.comment, "fine");
  assert.equal(answered.resolution?.resolved_by, "alice");

  await assert.rejects(c.interrupts.resolve(approval.id, false), (error) => {
    assert.ok(error instanceof Conflict);
    assert.equal(error.code, "already_resolved");
    assert.equal(error.resolution?.value, true);
    return true;
  });
  const outcomes = (await c.interrupts.audit(approval.id)).map((e) => e.outcome);
  assert.equal(outcomes.filter((o) => o === "accepted").length, 1);
  assert.ok(outcomes.length >= 3, outcomes.join());

  const ask = await paused(c, run.run_id);
  assert.equal(ask.type, "ask");
  await c.interrupts.resolve(ask.id, "Ada", { ifMatch: "*" });
  assert.equal(await finished(c, run.run_id), "succeeded");
  assert.match((await c.runs.get(run.run_id)).output.final_message, /Ada/);
  await assert.rejects(c.interrupts.get("no-such-interrupt"), NotFound);
});

test("interrupts are paged, assigned and answered in bulk", needsBroker, async () => {
  const c = client();
  const thread = `t-${crypto.randomUUID().slice(0, 8)}`;
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await c.runs.start("counter", {}, { threadId: `${thread}-${i}` }));
  const asked = [];
  for (const r of runs) asked.push(await paused(c, r.run_id));

  const byPage = await collect(c.interrupts.iterate({ agentId: "counter", limit: 1 }));
  const ids = byPage.map((i) => i.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const a of asked) assert.ok(ids.includes(a.id));
  const first = await c.interrupts.list({ agentId: "counter", limit: 1 });
  assert.equal(first.items.length, 1);
  assert.ok(first.nextCursor);
  const mine = await c.interrupts.list({ threadId: `${thread}-0`, status: "pending" });
  assert.deepEqual(mine.items.map((i) => i.id), [asked[0].id]);

  const moved = await c.interrupts.assign(asked[0].id, ["user:lead@example.com"], { watchers: ["group:audit"] });
  assert.deepEqual(moved.assignees, ["user:lead@example.com"]);
  assert.deepEqual(moved.watchers, ["group:audit"]);
  const forLead = await c.interrupts.list({ assignedTo: "user:lead@example.com" });
  assert.ok(forLead.items.some((i) => i.id === asked[0].id));
  assert.deepEqual((await c.interrupts.assign(asked[0].id, [])).assignees, []);

  const both = await c.interrupts.resolveMany(true, { ids: [asked[0].id, asked[1].id], comment: "batch" });
  assert.deepEqual([both.accepted, both.refused, both.truncated], [2, 0, false]);
  assert.equal(errorForResult(both.results[0]), null);
  const again = await c.interrupts.resolveMany(true, { ids: [asked[0].id] });
  const refused = errorForResult(again.results[0]);
  assert.ok(refused instanceof Conflict);
  assert.equal(refused.code, "already_resolved");
  const byFilter = await c.interrupts.resolveMany(true, { filter: { thread_id: runs[2].thread_id } });
  assert.equal(byFilter.accepted, 1);
  assert.throws(() => c.interrupts.resolveMany(true, {}), TypeError);
  for (const r of runs) assert.equal(await finished(c, r.run_id), "succeeded");
});

test("an answer held for undo is withdrawn", needsBroker, async () => {
  const c = client();
  const run = await c.runs.start(UNDO_AGENT);
  const question = await paused(c, run.run_id);
  assert.equal((await c.interrupts.resolve(question.id, true)).status, "accepted");
  assert.equal((await c.interrupts.withdraw(question.id)).status, "pending");
  await assert.rejects(c.interrupts.withdraw(question.id), (error) => {
    assert.ok(error instanceof Conflict);
    assert.equal(error.code, "not_held");
    return true;
  });
  await c.runs.cancel(run.run_id);
});
