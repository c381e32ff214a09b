/** The broker's probes and public documents: liveness, readiness, metrics, how people
 * sign in, and the keys decision receipts verify against. (Not ready, a 503 readiness
 * report, is an answer: auth.test.js reads it from a broker with no worker.) */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Unavailable } from "../src/index.js";
import { client, faultyFetch, needsBroker } from "./helpers.js";

test("the probes, the metrics and the public documents are read", needsBroker, async () => {
  const c = client();
  assert.deepEqual(await c.health(), { status: "ok" });
  const ready = await c.ready();
  assert.equal(ready.status, "ready");
  assert.equal(ready.checks.redis, "ok");
  assert.ok(Number(ready.checks.workers) >= 1, JSON.stringify(ready));

  const metrics = await c.metrics();
  assert.match(metrics, /^# HELP broker_interrupts /m);
  assert.match(metrics, /^broker_workers_alive [1-9]/m);

  assert.deepEqual(await c.authConfig(), { oidc: null });
  const { keys } = await c.receiptKeys();
  assert.ok(keys.length >= 1);
  for (const key of keys) {
    assert.deepEqual([key.kty, key.crv, key.alg, key.use], ["OKP", "Ed25519", "EdDSA", "sig"]);
    assert.ok(key.kid && key.x);
  }
});

test("a 503 with an error body, not a readiness report, is thrown and not sent again", needsBroker, async () => {
  const probes = faultyFetch((r) => r.url.pathname === "/readyz");
  const c = client({ fetch: probes.fetch, retry: { attempts: 5, backoffMs: 1 } });
  probes.refuse = 1;
  await assert.rejects(c.ready(), (error) => {
    assert.ok(error instanceof Unavailable);
    assert.equal(error.code, "redis_unavailable");
    return true;
  });
  assert.equal(probes.seen.length, 1);
  assert.equal((await c.ready()).status, "ready");
});
