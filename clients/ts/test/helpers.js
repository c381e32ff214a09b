/**
 * What the tests share: the broker pytest started (tests/test_ts_client.py), waiting on
 * a run, real fetch and WebSocket wrapped to lose responses, refuse with a 503 or cut a
 * live connection part way, and the record of every request a client sends.
 */

import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";

import { Client } from "../src/index.js";

export const BROKER_URL = process.env.BROKER_URL ?? "";
export const UNDO_AGENT = process.env.UNDO_AGENT ?? "expiring_later";
export const needsBroker = BROKER_URL ? {} : { skip: "BROKER_URL is not set (tests/test_ts_client.py sets it)" };

/** pytest reads this file after the tests pass: the broker's routes they reached. */
const REQUESTS_FILE = process.env.CLIENT_REQUESTS_FILE ?? "";

/**
 * Notes one request a client sent (a JSON line: method and path), for the check that
 * the tests reach every public route of the broker. Each test file runs in its own
 * process, so each appends.
 * @param {string} method
 * @param {string | URL} url
 */
function record(method, url) {
  if (REQUESTS_FILE) appendFileSync(REQUESTS_FILE, `${JSON.stringify({ method, path: new URL(url).pathname })}\n`);
}

/**
 * The options with their fetch and WebSocket (the platform's when not given) wrapped to
 * record every request and every WebSocket opened.
 * @param {import("../src/index.js").ClientOptions} options
 * @returns {import("../src/index.js").ClientOptions}
 */
function recording(options) {
  const send = options.fetch ?? globalThis.fetch.bind(globalThis);
  const Base = options.WebSocket ?? globalThis.WebSocket;
  /** @type {typeof fetch} */
  const recorded = (input, init = {}) => {
    record(init.method ?? "GET", input instanceof Request ? input.url : input);
    return send(input, init);
  };
  if (typeof Base !== "function") return { ...options, fetch: recorded };
  const RecordedWebSocket = class extends Base {
    /** @param {string} url @param {string | string[]} [protocols] */
    constructor(url, protocols) {
      record("GET", url);
      super(url, protocols);
    }
  };
  return { ...options, fetch: recorded, WebSocket: RecordedWebSocket };
}

/**
 * A client of the broker pytest started (or of `url`), its requests recorded.
 * @param {import("../src/index.js").ClientOptions} [options]
 */
export function client(options = {}, url = BROKER_URL) {
  return new Client(url, recording(options));
}

/**
 * Polls `check` until it gives something truthy.
 * @template T
 * @param {() => Promise<T | null | undefined | false>} check
 * @param {string} what
 * @returns {Promise<T>}
 */
export async function waitUntil(check, what, deadlineMs = 60_000) {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const got = await check();
    if (got) return got;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Waits for the run to stop on an interrupt; the pending one.
 * @param {Client} c @param {string} runId */
export function paused(c, runId) {
  return waitUntil(async () => {
    const run = await c.runs.get(runId);
    assert.ok(!["failed", "succeeded", "cancelled"].includes(run.status), JSON.stringify(run));
    const { items } = await c.interrupts.list({ runId });
    return run.status === "interrupted" && items.length ? items[0] : null;
  }, `run ${runId} to stop on an interrupt`);
}

/** @param {Client} c @param {string} runId */
export function finished(c, runId) {
  return waitUntil(async () => {
    const { status } = await c.runs.get(runId);
    return ["succeeded", "failed", "cancelled"].includes(status) ? status : null;
  }, `run ${runId} to end`);
}

/** Every event once, in the log's order. @param {any[]} seen @param {any[]} log */
export function assertWholeLog(seen, log) {
  const ids = seen.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, "an event came twice");
  assert.deepEqual(ids, log.map((e) => e.id), "an event is missing or out of order");
  assert.deepEqual(seen, log);
}

/** @template T @param {AsyncIterable<T>} items */
export async function collect(items) {
  const out = [];
  for await (const item of items) out.push(item);
  return out;
}

/**
 * A fetch that, for the requests `pick` chooses, first refuses `refuse` of them with a
 * 503 (never sent) and then loses the response of `lose` of them (sent, answer dropped).
 * @param {(request: {url: URL, method: string, headers: Headers}) => boolean} pick
 */
export function faultyFetch(pick) {
  const faults = {
    lose: 0,
    refuse: 0,
    /** @type {{url: URL, method: string, headers: Headers}[]} */
    seen: [],
    /** @type {typeof fetch} */
    fetch: async (input, init = {}) => {
      const request = { url: new URL(String(input)), method: init.method ?? "GET", headers: new Headers(init.headers) };
      if (pick(request)) {
        faults.seen.push(request);
        if (faults.refuse > 0) {
          faults.refuse -= 1;
          const body = JSON.stringify({ error: { code: "redis_unavailable", message: "refused by the test" } });
          return new Response(body, { status: 503, headers: { "content-type": "application/json", "retry-after": "0" } });
        }
        if (faults.lose > 0) {
          faults.lose -= 1;
          const response = await fetch(input, init);
          await response.arrayBuffer();
          throw new TypeError("fetch failed", { cause: new Error("the test dropped the response") });
        }
      }
      return fetch(input, init);
    },
  };
  return faults;
}

/**
 * A fetch whose streamed responses, for the URLs `pick` chooses, arrive in small pieces
 * and break part way through the second message of each connection, as a dropped
 * connection does: every connection hands over at least one whole message, and cuts
 * the next one in two.
 * @param {(url: URL) => boolean} pick
 */
export function cuttingFetch(pick, pieceBytes = 16) {
  const state = {
    cuts: 0,
    /** @type {typeof fetch} */
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      if (!pick(new URL(String(input))) || !response.body || response.status >= 400) return response;
      const reader = response.body.getReader();
      const text = new TextDecoder();
      /** @type {Uint8Array[]} */
      let pending = [];
      let seen = "";
      const body = new ReadableStream({
        async pull(controller) {
          const end = seen.indexOf("\n\n");
          if (end !== -1 && seen.length > end + 2) {
            state.cuts += 1;
            reader.cancel().catch(() => {});
            controller.error(new TypeError("terminated by the test"));
            return;
          }
          if (!pending.length) {
            const { done, value } = await reader.read();
            if (done) return controller.close();
            pending = [];
            for (let i = 0; i < value.length; i += pieceBytes) pending.push(value.subarray(i, i + pieceBytes));
          }
          const piece = /** @type {Uint8Array} */ (pending.shift());
          seen += text.decode(piece, { stream: true });
          controller.enqueue(piece);
        },
        cancel: (reason) => reader.cancel(reason),
      });
      return new Response(body, { status: response.status, headers: response.headers });
    },
  };
  return state;
}

/** The platform's WebSocket, closing each connection after `frames` frames. */
export function cuttingWebSocket(frames = 3) {
  const state = {
    cuts: 0,
    /** @type {string[]} */
    urls: [],
    WebSocket: class extends WebSocket {
      /** @param {string | URL} url @param {string | string[]} [protocols] */
      constructor(url, protocols) {
        super(url, protocols);
        state.urls.push(String(url));
        let n = 0;
        this.addEventListener("message", () => {
          n += 1;
          if (n === frames) {
            state.cuts += 1;
            this.close();
          }
        });
      }
    },
  };
  return state;
}
