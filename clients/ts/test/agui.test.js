/** The AG-UI endpoint: a run started, its interrupts answered with `resume` entries, a
 * `RUN_ERROR` handed out as an event, and a refusal before the stream thrown. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { NotFound, InvalidInput } from "../src/index.js";
import { client, collect, needsBroker } from "./helpers.js";

/** @param {any[]} events */
const types = (events) => events.map((e) => e.type);

test("an AG-UI run is started, paused and resumed to its end", needsBroker, async () => {
  const c = client();
  const threadId = crypto.randomUUID();
  const asked = await collect(
    c.agui.run("naming", {
      threadId,
      messages: [{ id: "u1", role: "user", content: "hi" }],
      forwardedProps: { interruptOutcome: true },
    }),
  );
  assert.equal(asked[0].type, "RUN_STARTED");
  assert.equal(asked[0].threadId, threadId);
  const finished = asked.at(-1);
  assert.equal(finished.type, "RUN_FINISHED", JSON.stringify(asked));
  assert.equal(finished.outcome?.type, "interrupt", JSON.stringify(finished));
  const [approval] = finished.outcome.interrupts;
  assert.equal(approval.reason, "approval");
  assert.ok(asked.some((e) => e.type === "CUSTOM" && e.name === "on_interrupt"), types(asked).join());

  const resume = (/** @type {string} */ interruptId, /** @type {unknown} */ payload) => ({
    threadId,
    forwardedProps: { interruptOutcome: true },
    resume: [{ interruptId, status: /** @type {const} */ ("resolved"), payload }],
  });
  const named = await collect(c.agui.run("naming", resume(approval.id, true)));
  const [ask] = named.at(-1).outcome.interrupts;
  assert.equal(ask.reason, "ask");
  const done = await collect(c.agui.run("naming", resume(ask.id, "Grace")));
  assert.equal(done.at(-1).type, "RUN_FINISHED");
  assert.equal(done.at(-1).outcome?.type ?? "success", "success", JSON.stringify(done.at(-1)));
  const said = done.filter((e) => e.type === "TEXT_MESSAGE_CONTENT").map((e) => e.delta).join("");
  assert.match(said, /Grace/);

  const answered = (await c.interrupts.get(ask.id)).interrupt;
  assert.equal(answered.resolution?.channel, "agui");
  assert.equal(answered.resolution?.value, "Grace");
});

test("a resume with nothing pending is a RUN_ERROR event; a refusal is thrown", needsBroker, async () => {
  const c = client();
  const nothing = await collect(
    c.agui.run("naming", {
      threadId: crypto.randomUUID(),
      resume: [{ interruptId: "x", status: "resolved", payload: 1 }],
    }),
  );
  assert.deepEqual(types(nothing), ["RUN_STARTED", "RUN_ERROR"]);
  assert.equal(nothing[1].code, "no_pending_interrupt");

  await assert.rejects(collect(c.agui.run("no-such-agent", { threadId: crypto.randomUUID() })), (error) => {
    assert.ok(error instanceof NotFound);
    assert.equal(error.code, "agent_not_found");
    assert.ok(error.details.known_agents.includes("naming"));
    return true;
  });
  await assert.rejects(collect(c.agui.run("naming", { threadId: "not a thread id" })), InvalidInput);
  assert.throws(() => c.agui.run("naming", /** @type {any} */ ({})), TypeError);
});
