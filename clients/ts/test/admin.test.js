/** Webhook subscriptions over `/admin/webhooks`: made (the secret shown once), listed,
 * read, changed, their deliveries read and verified, removed; a configured one is
 * read-only. A receiver this file runs gets the deliveries. */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { Conflict, InvalidInput, NotFound, verifyWebhook } from "../src/index.js";
import { client, needsBroker, paused, waitUntil } from "./helpers.js";

/** The subscription pytest configured (BROKER_WEBHOOKS): read-only over the API. */
const CONFIGURED = process.env.WEBHOOK_ID ?? "tsclient";

/** @type {{path: string | undefined, headers: Record<string, string | string[] | undefined>, body: string}[]} */
const received = [];
const server = createServer((request, response) => {
  /** @type {Buffer[]} */
  const chunks = [];
  request.on("data", (c) => chunks.push(c));
  request.on("end", () => {
    received.push({ path: request.url, headers: request.headers, body: Buffer.concat(chunks).toString() });
    response.writeHead(200).end();
  });
});
before(() => new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined))));
after(() => server.close());

function receiverUrl(/** @type {string} */ path) {
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  return `http://127.0.0.1:${address.port}${path}`;
}

test("a subscription is made, read, changed, delivered to and removed", needsBroker, async () => {
  const c = client();
  const path = `/hook/${crypto.randomUUID().slice(0, 8)}`;
  const made = await c.webhooks.create(receiverUrl(path), {
    events: ["interrupt.created"],
    agents: ["counter"],
    description: "from the TypeScript client",
  });
  assert.match(made.secret, /^whsec_/);
  assert.equal(made.source, "api");
  assert.deepEqual([made.events, made.agents, made.types, made.enabled], [["interrupt.created"], ["counter"], null, true]);

  const got = await c.webhooks.get(made.id);
  assert.equal(got.description, "from the TypeScript client");
  assert.ok(!("secret" in got), JSON.stringify(got));
  const listed = await c.webhooks.list();
  assert.deepEqual(listed.find((w) => w.id === made.id), got);
  assert.equal(listed.find((w) => w.id === CONFIGURED)?.source, "config");

  // a null clears a field; an undefined one is left as it is
  const changed = await c.webhooks.update(made.id, { description: null, types: undefined });
  assert.equal(changed.description, null);
  assert.deepEqual(changed.agents, ["counter"]);
  assert.deepEqual(await c.webhooks.get(made.id), changed);

  const run = await c.runs.start("counter");
  const question = await paused(c, run.run_id);
  const delivered = await waitUntil(async () => {
    const items = await c.webhooks.deliveries(made.id);
    return items.find((d) => d.outcome === "delivered");
  }, "a delivery to the new subscription");
  assert.equal(delivered.event, "interrupt.created");
  assert.equal(delivered.status_code, 200);
  assert.ok((await c.webhooks.deliveries(made.id, { limit: 1 })).length === 1);
  const body = received.find((r) => r.path === path && JSON.parse(r.body).data?.interrupt_id === question.id);
  assert.ok(body, "the receiver got no delivery of the interrupt");
  const payload = await verifyWebhook(made.secret, body.body, body.headers);
  assert.equal(payload.type, "interrupt.created");

  await c.webhooks.delete(made.id);
  for (const gone of [() => c.webhooks.get(made.id), () => c.webhooks.deliveries(made.id), () => c.webhooks.delete(made.id)]) {
    await assert.rejects(gone, (error) => {
      assert.ok(error instanceof NotFound);
      assert.equal(error.code, "webhook_not_found");
      return true;
    });
  }
  assert.ok(!(await c.webhooks.list()).some((w) => w.id === made.id));
  await c.runs.cancel(run.run_id);
});

test("a configured subscription is read-only, and a bad change is refused", needsBroker, async () => {
  const c = client();
  assert.equal((await c.webhooks.get(CONFIGURED)).source, "config");
  for (const refused of [() => c.webhooks.update(CONFIGURED, { enabled: false }), () => c.webhooks.delete(CONFIGURED)]) {
    await assert.rejects(refused, (error) => {
      assert.ok(error instanceof Conflict);
      assert.equal(error.code, "webhook_read_only");
      return true;
    });
  }
  await assert.rejects(c.webhooks.create("not a url"), InvalidInput);
  await assert.rejects(c.webhooks.deliveries(CONFIGURED, { limit: 0 }), InvalidInput);
});
