/**
 * Checking a webhook delivery of the broker: Standard Webhooks signatures.
 *
 * The broker signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under the
 * subscription's secret (`whsec_` and base64 of the key) and sends
 * `webhook-signature: v1,<base64>` (several, space-separated, while a secret rotates).
 * A receiver checks the signature over the exact bytes it got, and that the timestamp is
 * recent, so a captured delivery cannot be replayed later. WebCrypto does the HMAC, so
 * this runs in browsers, Node ≥ 18, Deno and workers alike.
 */

export const TOLERANCE_S = 5 * 60;

/** The delivery is not one the holder of the secret signed, or it is too old. */
export class WebhookVerificationError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

async function subtle() {
  if (globalThis.crypto?.subtle) return globalThis.crypto.subtle;
  // Node 18 without the global: its WebCrypto is in node:crypto (never reached elsewhere)
  const name = "node:crypto";
  const { webcrypto } = await import(/* @vite-ignore */ name);
  return /** @type {SubtleCrypto} */ (webcrypto.subtle);
}

/** @param {string} text */
function fromBase64(text) {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** @param {Uint8Array} bytes */
function toBase64(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** @param {string} secret */
function key(secret) {
  const body = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  try {
    return fromBase64(body + "=".repeat((4 - (body.length % 4)) % 4));
  } catch {
    throw new TypeError("a webhook secret is `whsec_` followed by base64");
  }
}

/**
 * Headers from a `Headers`, a plain object or a Node `IncomingHttpHeaders`, lowercased.
 * @param {Headers | Record<string, string | string[] | undefined>} headers
 */
function lowered(headers) {
  /** @type {Map<string, string>} */
  const out = new Map();
  const entries = typeof Headers !== "undefined" && headers instanceof Headers ? headers.entries() : Object.entries(headers);
  for (const [k, v] of entries) if (v != null) out.set(k.toLowerCase(), Array.isArray(v) ? v.join(" ") : String(v));
  return out;
}

/** Equal strings, compared in time independent of where they differ.
 * @param {string} a @param {string} b */
function same(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * The delivery's JSON payload once its signature and timestamp check out; rejects with
 * `WebhookVerificationError` otherwise. `body` is the raw body as received.
 * @param {string} secret
 * @param {string | Uint8Array | ArrayBuffer} body
 * @param {Headers | Record<string, string | string[] | undefined>} headers
 * @param {{toleranceS?: number, now?: number}} [options] `now` in seconds since the epoch
 */
export async function verifyWebhook(secret, body, headers, { toleranceS = TOLERANCE_S, now } = {}) {
  const h = lowered(headers);
  const msgId = h.get("webhook-id");
  const stamp = h.get("webhook-timestamp");
  const signatures = h.get("webhook-signature");
  if (!msgId || !stamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, -timestamp or -signature");
  }
  if (!/^\d+$/.test(stamp.trim())) throw new WebhookVerificationError("webhook-timestamp is not a number");
  const sent = Number(stamp.trim());
  if (Math.abs((now ?? Date.now() / 1000) - sent) > toleranceS) {
    throw new WebhookVerificationError("the delivery's timestamp is too old or too new");
  }
  const raw = typeof body === "string" ? new TextEncoder().encode(body) : new Uint8Array(body);
  const prefix = new TextEncoder().encode(`${msgId}.${sent}.`);
  const content = new Uint8Array(prefix.length + raw.length);
  content.set(prefix);
  content.set(raw, prefix.length);
  const crypto = await subtle();
  const hmacKey = await crypto.importKey("raw", key(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const expected = toBase64(new Uint8Array(await crypto.sign("HMAC", hmacKey, content)));
  for (const given of signatures.split(" ")) {
    const comma = given.indexOf(",");
    if (comma !== -1 && given.slice(0, comma) === "v1" && same(given.slice(comma + 1), expected)) {
      return JSON.parse(new TextDecoder().decode(raw));
    }
  }
  throw new WebhookVerificationError("no signature matches");
}
