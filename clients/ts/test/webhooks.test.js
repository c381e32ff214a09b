/** Webhook deliveries verify (Standard Webhooks, HMAC-SHA256 via WebCrypto) and their
 * action links show their page and answer. The broker pytest started delivers
 * `interrupt.created` for the `counter` agent to a receiver this file runs on
 * WEBHOOK_PORT. */

import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { WebhookVerificationError, linkFor, linkToken, verifyWebhook } from "../src/index.js";
import { client, finished, needsBroker, paused, waitUntil } from "./helpers.js";

const SECRET = process.env.WEBHOOK_SECRET ?? "";
const PORT = Number(process.env.WEBHOOK_PORT ?? 0);
const PATH = process.env.WEBHOOK_PATH ?? "/hook";

/** @type {{headers: Record<string, string | string[] | undefined>, body: string}[]} */
const received = [];
const server = createServer((request, response) => {
  const chunks = [];
  request.on("data", (c) => chunks.push(c));
  request.on("end", () => {
    if (request.url === PATH) received.push({ headers: request.headers, body: Buffer.concat(chunks).toString() });
    response.writeHead(200).end();
  });
});

before(() => (PORT ? new Promise((resolve) => server.listen(PORT, "127.0.0.1", () => resolve(undefined))) : undefined));
after(() => server.close());

/** @param {string} interruptId */
function deliveryOf(interruptId) {
  return waitUntil(
    async () => received.find((r) => JSON.parse(r.body).data?.interrupt_id === interruptId),
    `the interrupt.created delivery of ${interruptId}`,
  );
}

test("a delivery verifies, a tampered or old one does not, and its links answer", needsBroker, async () => {
  const c = client();
  const run = await c.runs.start("counter");
  const question = await paused(c, run.run_id);
  const got = await deliveryOf(question.id);

  const payload = await verifyWebhook(SECRET, got.body, got.headers);
  assert.equal(payload.type, "interrupt.created");
  assert.equal(payload.data.interrupt_id, question.id);
  const asHeaders = new Headers(/** @type {Record<string, string>} */ (got.headers));
  assert.deepEqual(await verifyWebhook(SECRET, new TextEncoder().encode(got.body), asHeaders), payload);

  await assert.rejects(verifyWebhook(SECRET, `${got.body} `, got.headers), WebhookVerificationError);
  const other = `whsec_${randomBytes(24).toString("base64")}`;
  await assert.rejects(verifyWebhook(other, got.body, got.headers), WebhookVerificationError);
  const later = Number(got.headers["webhook-timestamp"]) + 3600;
  await assert.rejects(verifyWebhook(SECRET, got.body, got.headers, { now: later }), /too old or too new/);
  await assert.rejects(verifyWebhook(SECRET, got.body, { ...got.headers, "webhook-id": undefined }), /missing/);

  const links = payload.data.links;
  assert.ok(["approve", "reject"].every((choice) => links.some((l) => l.choice === choice)));
  assert.equal(linkToken(linkFor(links, "approve")), linkToken(linkFor(links, "approve").url));
  assert.throws(() => linkFor(links, "maybe"), /choices: /);
  const shown = await c.links.show(linkFor(links, "approve"));
  assert.ok(shown.ok && shown.page.includes("<form"), shown.page);
  assert.equal((await c.interrupts.get(question.id)).interrupt.status, "pending");
  const used = await c.links.answer(links, "approve", { comment: "from the mail" });
  assert.ok(used.ok, used.page);
  const answered = (await c.interrupts.get(question.id)).interrupt;
  assert.equal(answered.resolution?.channel, "link");
  assert.equal(answered.resolution?.comment, "from the mail");
  assert.equal((await c.links.use(linkFor(links, "approve"))).status, 410);
  assert.equal((await c.links.show(linkFor(links, "approve").url)).status, 410);
  assert.equal((await c.links.use(linkFor(links, "reject").url)).status, 409);
  assert.equal(await finished(c, run.run_id), "succeeded");
});

test("a signature made elsewhere verifies, also among others while a secret rotates", async () => {
  const key = randomBytes(32);
  const secret = `whsec_${key.toString("base64")}`;
  const body = JSON.stringify({ type: "interrupt.created", data: { note: "é\u2028" } });
  const id = "msg_1";
  const stamp = String(Math.floor(Date.now() / 1000));
  const sign = (/** @type {Buffer} */ k) => createHmac("sha256", k).update(`${id}.${stamp}.${body}`).digest("base64");
  const headers = {
    "Webhook-Id": id,
    "Webhook-Timestamp": stamp,
    "Webhook-Signature": `v1,${sign(randomBytes(32))} v1,${sign(key)}`,
  };
  assert.deepEqual(await verifyWebhook(secret, body, headers), JSON.parse(body));
  const onlyOld = { ...headers, "Webhook-Signature": `v1,${sign(randomBytes(32))}` };
  await assert.rejects(verifyWebhook(secret, body, onlyOld), /no signature matches/);
  await assert.rejects(verifyWebhook(secret, body, { ...headers, "Webhook-Timestamp": "soon" }), /not a number/);
  await assert.rejects(verifyWebhook("whsec_***", body, headers), TypeError);
});
