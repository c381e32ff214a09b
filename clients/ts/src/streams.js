/**
 * The I/O of the two live-event followers (their bookkeeping: follow.js): a run's SSE
 * read from a streaming fetch, and `WS /ws` over the platform's WebSocket. Both are
 * async generators: breaking out of the loop, or aborting the `signal`, closes the
 * connection.
 */

import { Unavailable, fromResponse } from "./errors.js";
import { SSEDecoder } from "./follow.js";
import { sleep } from "./retry.js";

/** A live stream sends a keep-alive every 15 s: this long without a byte is a dead one. */
export const STREAM_READ_TIMEOUT_MS = 60_000;

/**
 * One connection of a live stream: ended by the caller's `signal`, or by
 * `STREAM_READ_TIMEOUT_MS` without a byte once `watch()` is called (again at each byte).
 * @param {AbortSignal | undefined} signal
 * @param {string} what names the stream in the timeout's error
 */
export function watchedConnection(signal, what) {
  const controller = new AbortController();
  const stop = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", stop, { once: true });
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let idle;
  return {
    signal: controller.signal,
    watch() {
      clearTimeout(idle);
      idle = setTimeout(() => controller.abort(new Error(`no byte from ${what}`)), STREAM_READ_TIMEOUT_MS);
    },
    close() {
      clearTimeout(idle);
      signal?.removeEventListener("abort", stop);
      controller.abort();
    },
  };
}

/**
 * A run's SSE, reconnecting with `Last-Event-ID` until its terminal event.
 * @param {(headers: Record<string, string>, signal: AbortSignal) => Promise<Response>} open
 * @param {import("./follow.js").Follower} follower
 * @param {AbortSignal} [signal]
 */
export async function* runEvents(open, follower, signal) {
  for (;;) {
    signal?.throwIfAborted();
    follower.connected();
    /** @type {Record<string, string>} */
    const headers = follower.last ? { "Last-Event-ID": follower.last } : {};
    const connection = watchedConnection(signal, "the event stream");
    /** @type {unknown} */
    let cut;
    try {
      connection.watch();
      /** @type {Response} */
      let response;
      try {
        response = await open(headers, connection.signal);
      } catch (error) {
        signal?.throwIfAborted();
        cut = error;
        continue;
      }
      if (response.status >= 400) {
        const error = await fromResponse(response);
        if (!(error instanceof Unavailable)) throw error;
        cut = error;
        continue;
      }
      if (!response.body) throw new TypeError("this platform's fetch does not stream responses");
      const reader = response.body.getReader();
      const text = new TextDecoder();
      const decoder = new SSEDecoder();
      try {
        for (;;) {
          /** @type {ReadableStreamReadResult<Uint8Array>} */
          let chunk;
          try {
            chunk = await reader.read();
          } catch (error) {
            signal?.throwIfAborted();
            cut = error;
            break;
          }
          if (chunk.done) break;
          connection.watch();
          for (const message of decoder.feed(text.decode(chunk.value, { stream: true }))) {
            const event = follower.takeSSE(message);
            if (event) yield event;
            if (follower.finished) return;
          }
        }
      } finally {
        reader.cancel().catch(() => {});
      }
    } finally {
      connection.close();
      if (cut !== undefined) await sleep(follower.failed(cut), signal);
    }
    if (cut !== undefined) continue;
    if (follower.ended()) return;
    await sleep(follower.failed(), signal);
  }
}

/**
 * Items pushed by event handlers, pulled by an async loop.
 * @template T
 */
class Inbox {
  constructor() {
    /** @type {T[]} */
    this.items = [];
    /** @type {((item: T) => void) | null} */
    this.waiting = null;
  }

  /** @param {T} item */
  push(item) {
    if (this.waiting) {
      const wake = this.waiting;
      this.waiting = null;
      wake(item);
    } else this.items.push(item);
  }

  /** @returns {Promise<T>} */
  next() {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }
}

/**
 * `WS /ws` frames as events, reconnecting with `after=` the last one seen. Never ends
 * by itself.
 * @param {(after: string | null) => string} urlFrom
 * @param {any} WebSocketClass
 * @param {import("./follow.js").Follower} follower
 * @param {AbortSignal} [signal]
 */
export async function* wsEvents(urlFrom, WebSocketClass, follower, signal) {
  for (;;) {
    signal?.throwIfAborted();
    follower.connected();
    /** @type {Inbox<{frame?: string, error?: unknown, closed?: any}>} */
    const inbox = new Inbox();
    const ws = new WebSocketClass(urlFrom(follower.last));
    ws.onmessage = (/** @type {MessageEvent} */ e) => inbox.push({ frame: String(e.data) });
    ws.onerror = (/** @type {Event} */ e) => inbox.push({ error: /** @type {any} */ (e).error ?? new Error("WebSocket error") });
    ws.onclose = (/** @type {CloseEvent} */ e) => inbox.push({ closed: e });
    const stop = () => inbox.push({ error: signal?.reason });
    signal?.addEventListener("abort", stop, { once: true });
    /** @type {unknown} */
    let failure;
    try {
      for (;;) {
        const item = await inbox.next();
        signal?.throwIfAborted();
        if (item.frame === undefined) {
          failure = item.error;
          break;
        }
        const event = follower.takeFrame(JSON.parse(item.frame));
        if (event) yield event;
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      ws.onmessage = ws.onerror = ws.onclose = null;
      if (ws.readyState === 0 || ws.readyState === 1) ws.close();
    }
    await sleep(follower.failed(failure), signal);
  }
}
