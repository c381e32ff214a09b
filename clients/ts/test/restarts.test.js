/** Live events across a real API restart: the SSE follower across a killed API process
 * (every connection drops), the WebSocket follower across a stopped one (its streams end
 * with a reconnect hint). pytest does the restart when CONTROL_URL is posted to. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { assertWholeLog, client, collect, needsBroker, paused } from "./helpers.js";

const CONTROL_URL = process.env.CONTROL_URL ?? "";
const needsControl = CONTROL_URL ? needsBroker : { skip: "CONTROL_URL is not set (tests/test_ts_client.py sets it)" };

/** @param {"kill" | "stop"} how */
async function restartApi(how) {
  const response = await fetch(`${CONTROL_URL}/restart-api?how=${how}`, { method: "POST" });
  assert.equal(response.status, 200);
}

test("the SSE follower goes on across a killed API process", needsControl, async () => {
  const c = client({ reconnect: { attempts: 30, backoffMs: 50 } });
  const run = await c.runs.start("counter");
  const seen = [];
  for await (const event of c.runs.events(run.run_id)) {
    seen.push(event);
    if (event.type === "run.interrupted") {
      await restartApi("kill");
      await c.interrupts.resolve(event.data.interrupt_ids[0], true);
    }
  }
  assert.equal(seen.at(-1).type, "run.succeeded");
  assertWholeLog(seen, await collect(c.runs.events(run.run_id)));
});

test("the WebSocket follower goes on across a stopped API process", needsControl, async () => {
  const c = client({ reconnect: { attempts: 30, backoffMs: 50 } });
  const run = await c.runs.start("counter");
  const seen = [];
  for await (const event of c.follow({ runId: run.run_id, after: "0" })) {
    seen.push(event);
    if (event.type === "run.interrupted") {
      await restartApi("stop");
      await c.interrupts.resolve((await paused(c, run.run_id)).id, true);
    }
    if (event.type === "run.succeeded") break;
  }
  const log = (await collect(c.runs.events(run.run_id))).filter((e) => ["run", "interrupt"].includes(e.type.split(".")[0]));
  assertWholeLog(seen, log);
});
