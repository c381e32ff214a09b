/**
 * Following live events without missing one: the bookkeeping of both followers.
 *
 * The broker gives every event a stream id, a resume cursor: the run's SSE replays what
 * follows `Last-Event-ID`, and `WS /ws` what follows `after=`. A follower keeps the
 * last id it handed out, reconnects from it when a connection drops (or the broker ends
 * a stream early with a hint naming `resume_from`: Redis unavailable, the API process
 * stopping), and drops anything at or before it, so the events seen are the log in
 * order with no gap and no repeat. The I/O lives in streams.js.
 */

import { fromFrame } from "./errors.js";

export const TERMINAL_EVENTS = new Set(["run.succeeded", "run.failed", "run.cancelled"]);

/** WebSocket error frames that end a connection to be made again, not a refusal. */
export const RECONNECT_CODES = new Set(["slow_consumer", "redis_unavailable", "shutting_down"]);

/** @param {string} eid @returns {[number, number]} */
export function streamId(eid) {
  const [ms, seq] = eid.split("-", 2);
  return [Number(ms), Number(seq || 0)];
}

/** True when stream id `a` comes after `b`. @param {string} a @param {string} b */
export function isAfter(a, b) {
  const [am, as] = streamId(a);
  const [bm, bs] = streamId(b);
  return am > bm || (am === bm && as > bs);
}

/**
 * SSE text in, messages out (comments and `retry:` are skipped). Lines end at LF or
 * CRLF only, as the SSE format says (JSON data may hold U+2028 and the like).
 */
export class SSEDecoder {
  constructor() {
    this.buffer = "";
    this.event = "message";
    /** @type {string[]} */
    this.data = [];
    /** @type {string | null} */
    this.id = null;
  }

  /** @param {string} text @returns {{event: string, data: string, id: string | null}[]} */
  feed(text) {
    const lines = (this.buffer + text).split("\n");
    this.buffer = lines.pop() ?? "";
    const out = [];
    for (const raw of lines) {
      const got = this.line(raw.endsWith("\r") ? raw.slice(0, -1) : raw);
      if (got) out.push(got);
    }
    return out;
  }

  /** @param {string} line */
  line(line) {
    if (!line) {
      const got = this.data.length ? { event: this.event, data: this.data.join("\n"), id: this.id } : null;
      this.event = "message";
      this.data = [];
      this.id = null;
      return got;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id") this.id = value;
    return null;
  }
}

/** The position of one follower, and what to do on each message or failure. */
export class Follower {
  /**
   * @param {string | null | undefined} lastEventId
   * @param {import("./retry.js").Retry} retry
   */
  constructor(lastEventId, retry) {
    /** @type {string | null} */
    this.last = lastEventId || null;
    this.retry = retry;
    this.failures = 0;
    this.finished = false;
    this.seenNow = false;
    this.hinted = false;
  }

  /** A new connection: nothing seen on it yet. */
  connected() {
    this.seenNow = false;
    this.hinted = false;
  }

  /** True for an event after the last one handed out (a replay may overlap). @param {string} eid */
  fresh(eid) {
    return this.last === null || isAfter(eid, this.last);
  }

  /** The event to hand out, or null for one already handed out. @param {any} event */
  takeEvent(event) {
    const eid = event?.id;
    if (typeof eid !== "string" || !eid || !this.fresh(eid)) return null;
    this.last = eid;
    this.failures = 0;
    this.seenNow = true;
    if (TERMINAL_EVENTS.has(event.type)) this.finished = true;
    return event;
  }

  /** A run's SSE message: an event, or the reconnect hint the stream ends with.
   * @param {{event: string, data: string, id: string | null}} message */
  takeSSE(message) {
    const data = JSON.parse(message.data);
    if (message.event === "error") {
      this.hinted = true;
      this.resume(data.resume_from);
      return null;
    }
    if (message.id && !("id" in data)) data.id = message.id;
    return this.takeEvent(data);
  }

  /** A `WS /ws` frame: an event, a `gap` frame (handed out), or a control frame
   * (`live`, `error`). A refusal (`forbidden`, `invalid_cursor`) throws. @param {any} frame */
  takeFrame(frame) {
    const kind = frame?.type;
    if (kind === "live") {
      this.resume(frame.id);
      return null;
    }
    if (kind === "gap") return frame;
    if (kind === "error") {
      if ("resume_from" in frame || RECONNECT_CODES.has(frame.code)) {
        this.hinted = true;
        this.resume(frame.resume_from);
        return null;
      }
      throw fromFrame(frame);
    }
    return this.takeEvent(frame);
  }

  /** @param {unknown} eid */
  resume(eid) {
    if (typeof eid === "string" && eid && eid !== "0" && this.fresh(eid)) this.last = eid;
  }

  /** The server closed a run's stream cleanly: true when the run has nothing more (its
   * terminal event seen, or a stream with no events and no hint, which the broker sends
   * for a finished run followed past its end). */
  ended() {
    if (this.finished || (!this.seenNow && !this.hinted)) {
      this.finished = true;
      return true;
    }
    return false;
  }

  /**
   * One more failed or cut connection: the wait (ms) before the next; throws the error
   * once the reconnects in a row are used up.
   * @param {unknown} [error]
   */
  failed(error) {
    if (this.seenNow) this.failures = 0;
    this.failures += 1;
    this.seenNow = false;
    if (this.failures >= this.retry.attempts) {
      throw error ?? new Error("the event stream kept failing");
    }
    const retryAfter = /** @type {any} */ (error)?.retryAfterS ?? null;
    return this.retry.delay(this.failures, retryAfter);
  }
}
