/** Live events: a run's SSE and `WS /ws`, followed across cut connections with nothing
 * missed and nothing repeated, resumed from an event id, and refused on a bad cursor. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidInput } from "../src/index.js";
import { assertWholeLog, client, collect, cuttingFetch, cuttingWebSocket, needsBroker, paused } from "./helpers.js";

test("a run's SSE is followed across cut connections, each event once", needsBroker, async () => {
  const stream = cuttingFetch((url) => url.pathname.endsWith("/events"));
  const c = client({ fetch: stream.fetch, reconnect: { attempts: 30, backoffMs: 10 } });
  const plain = client();
  const run = await c.runs.start("counter");
  const seen = [];
  for await (const event of c.runs.events(run.run_id)) {
    seen.push(event);
    if (event.type === "run.interrupted") await c.interrupts.resolve(event.data.interrupt_ids[0], true);
  }
  assert.ok(stream.cuts >= 3, `the stream was cut ${stream.cuts} times in ${seen.length} events`);
  assert.equal(seen.at(-1).type, "run.succeeded");
  assert.ok(seen.some((e) => e.type === "interrupt.created"));
  const log = await collect(plain.runs.events(run.run_id));
  assertWholeLog(seen, log);

  // resumed after the middle of the log: the rest, and nothing before
  const middle = Math.floor(seen.length / 2);
  const rest = await collect(plain.runs.events(run.run_id, { lastEventId: seen[middle].id }));
  assert.deepEqual(rest, seen.slice(middle + 1));
  // followed past its end: nothing, and the loop ends
  assert.deepEqual(await collect(plain.runs.events(run.run_id, { lastEventId: seen.at(-1).id })), []);

  await assert.rejects(collect(plain.runs.events(run.run_id, { lastEventId: "not-an-id" })), (error) => {
    assert.ok(error instanceof InvalidInput);
    assert.equal(error.code, "invalid_cursor");
    return true;
  });
});

test("breaking out of an SSE loop, or aborting it, closes the stream", needsBroker, async () => {
  const c = client();
  const run = await c.runs.start("counter");
  for await (const event of c.runs.events(run.run_id)) {
    assert.equal(event.type, "run.queued");
    break;
  }
  await paused(c, run.run_id);
  const controller = new AbortController();
  const seen = [];
  await assert.rejects(
    (async () => {
      for await (const event of c.runs.events(run.run_id, { signal: controller.signal })) {
        seen.push(event);
        if (event.type === "run.interrupted") controller.abort(new Error("enough"));
      }
    })(),
    /enough/,
  );
  assert.equal(seen.at(-1).type, "run.interrupted");
  await c.runs.cancel(run.run_id);
});

test("WS /ws is followed across cut connections, each event once", needsBroker, async () => {
  const sockets = cuttingWebSocket(3);
  const c = client({ WebSocket: sockets.WebSocket, reconnect: { attempts: 30, backoffMs: 10 } });
  const run = await c.runs.start("counter");
  const seen = [];
  for await (const event of c.follow({ runId: run.run_id, after: "0" })) {
    seen.push(event);
    if (event.type === "run.interrupted") await c.interrupts.resolve(event.data.interrupt_ids[0], true);
    if (event.type === "run.succeeded") break;
  }
  assert.ok(sockets.cuts >= 2, "the WebSocket was never cut and followed again");
  assert.ok(sockets.urls.slice(1).every((u) => new URL(u).searchParams.get("after") !== "0"));
  const log = (await collect(c.runs.events(run.run_id))).filter((e) => ["run", "interrupt"].includes(e.type.split(".")[0]));
  assertWholeLog(seen, log);
});

test("WS /ws filters by thread and event kind, live", needsBroker, async () => {
  const c = client();
  const thread = `t-${crypto.randomUUID().slice(0, 8)}`;
  const seen = [];
  const watching = (async () => {
    for await (const event of c.follow({ threadId: thread, events: "interrupt", after: "0" })) {
      seen.push(event);
      if (event.type === "interrupt.resolved") return;
    }
  })();
  const run = await c.runs.start("counter", {}, { threadId: thread });
  const question = await paused(c, run.run_id);
  await c.interrupts.resolve(question.id, true);
  await watching;
  assert.deepEqual(seen.map((e) => e.type), ["interrupt.created", "interrupt.resolved"]);
  assert.ok(seen.every((e) => e.thread_id === thread));
});

test("WS /ws refuses a bad cursor with InvalidInput", needsBroker, async () => {
  const c = client();
  await assert.rejects(collect(c.follow({ after: "not-an-id" })), (error) => {
    assert.ok(error instanceof InvalidInput);
    assert.equal(error.code, "invalid_cursor");
    return true;
  });
});
