/** The parts that need no broker: the SSE decoder, the follower's bookkeeping, errors
 * from bodies, frames and bulk results, and retry waits. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  BrokerError,
  Conflict,
  Follower,
  Forbidden,
  InvalidInput,
  Retry,
  SSEDecoder,
  errorForResult,
  linkToken,
} from "../src/index.js";

test("the SSE decoder splits messages at LF or CRLF only, across chunks", () => {
  const decoder = new SSEDecoder();
  assert.deepEqual(decoder.feed(": keep-alive\n\nid: 1-0\nevent: run.q"), []);
  const data = JSON.stringify({ text: "a\u2028b" });
  assert.deepEqual(decoder.feed(`ueued\r\ndata: ${data}\r\n\r\nretry: 5\n`), [
    { event: "run.queued", data, id: "1-0" },
  ]);
  assert.deepEqual(decoder.feed("data: x\ndata: y\n\n"), [{ event: "message", data: "x\ny", id: null }]);
});

test("a follower hands each event out once, in order, and resumes from hints", () => {
  const follower = new Follower("5-0", new Retry({ attempts: 3, backoffMs: 100 }));
  follower.connected();
  assert.equal(follower.takeEvent({ id: "4-9", type: "run.started" }), null);
  assert.equal(follower.takeEvent({ id: "5-0", type: "run.started" }), null);
  assert.deepEqual(follower.takeEvent({ id: "10-0", type: "run.started" }), { id: "10-0", type: "run.started" });
  assert.equal(follower.takeSSE({ event: "error", data: '{"code":"redis_unavailable","resume_from":"11-0"}', id: null }), null);
  assert.equal(follower.last, "11-0");
  assert.equal(follower.ended(), false);
  assert.equal(follower.failed(), 100);
  assert.equal(follower.failed(), 200);
  assert.throws(() => follower.failed(new Error("down")), /down/);
  assert.equal(follower.takeFrame({ type: "live", id: "12-0" }), null);
  assert.deepEqual(follower.takeFrame({ type: "gap", oldest_id: "3-0" }), { type: "gap", oldest_id: "3-0" });
  assert.equal(follower.takeFrame({ type: "error", code: "slow_consumer", resume_from: "12-0" }), null);
  assert.throws(() => follower.takeFrame({ type: "error", code: "forbidden", message: "no" }), Forbidden);
  follower.takeEvent({ id: "13-0", type: "run.succeeded" });
  assert.equal(follower.finished, true);
});

test("errors come from bulk results and frames with their details", () => {
  assert.equal(errorForResult({ status: 200 }), null);
  const refused = errorForResult({ status: 409, error: { code: "already_resolved", message: "m", resolution: { value: 1 } } });
  assert.ok(refused instanceof Conflict && refused instanceof BrokerError && refused instanceof Error);
  assert.deepEqual(refused.resolution, { value: 1 });
  assert.equal(refused.name, "Conflict");
  const odd = errorForResult({ status: 418, error: { code: "teapot", message: "m" } });
  assert.ok(odd instanceof BrokerError && !(odd instanceof Conflict));
  assert.ok(errorForResult({ status: 422, error: { code: "invalid_answer", message: "m" } }) instanceof InvalidInput);
});

test("retry waits double up to a bound and honour Retry-After", () => {
  const retry = new Retry({ backoffMs: 100, maxBackoffMs: 1000 });
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => retry.delay(n)), [100, 200, 400, 800, 1000]);
  assert.equal(retry.delay(1, 0.5), 500);
  assert.equal(retry.delay(1, 60), 1000);
  assert.equal(linkToken("https://b.example/links/tok123?x=1"), "tok123");
  assert.equal(linkToken("tok123"), "tok123");
});
