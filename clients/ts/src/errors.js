/**
 * The broker's errors as classes: one class per family of error codes.
 *
 * Every error the broker answers has the shape `{"error": {"code", "message", ...}}`;
 * the extra fields (`resolution` on `already_resolved`, `fingerprint` on
 * `fingerprint_mismatch`, `known_agents` on `agent_not_found`...) are `details`. The
 * class is picked by the status, so `instanceof Conflict` holds for every 409 whatever
 * its code, and `error.code` tells them apart.
 */

/** An error answer of the broker: its HTTP status, code, message and other fields. */
export class BrokerError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} [details]
   * @param {Headers} [headers]
   */
  constructor(status, code, message, details = {}, headers = new Headers()) {
    super(`${status} ${code}: ${message}`);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.message = message;
    this.details = details;
    this.headers = headers;
  }
}

/** The request is wrong (400, 405, 413, 415, 422): a malformed or too large body, an
 * answer its schema refuses, a bad cursor, an idempotency key reused for another body. */
export class InvalidInput extends BrokerError {}

/** 401: no API key, or one the broker does not know. */
export class Unauthorized extends BrokerError {}

/** 403: the key lacks a scope, or the caller may not answer this interrupt. */
export class Forbidden extends BrokerError {}

/** 404: no such agent, run, interrupt, thread or webhook (or not one this key sees). */
export class NotFound extends BrokerError {}

/** 409: the state forbids it now (`already_resolved`, `run_finished`, `not_held`...). */
export class Conflict extends BrokerError {
  /** The winning answer, on `already_resolved`. */
  get resolution() {
    const got = this.details.resolution;
    return got && typeof got === "object" ? got : null;
  }
}

/** 410: an interrupt past its deadline, a record past its retention, a used link. */
export class Gone extends BrokerError {}

/** 412: the question changed since it was read; `fingerprint` is the current one. */
export class FingerprintMismatch extends BrokerError {
  get fingerprint() {
    const got = this.details.fingerprint;
    return typeof got === "string" ? got : null;
  }
}

/** 503: Redis is unavailable or the API process is stopping; retry (with the same
 * `Idempotency-Key` where the request changes state). */
export class Unavailable extends BrokerError {
  /** The `Retry-After` header in seconds, or null. */
  get retryAfterS() {
    const raw = this.headers.get("retry-after");
    const got = raw === null || raw === "" ? NaN : Number(raw);
    return Number.isFinite(got) ? got : null;
  }
}

const BY_STATUS = new Map([
  [400, InvalidInput],
  [401, Unauthorized],
  [403, Forbidden],
  [404, NotFound],
  [405, InvalidInput],
  [409, Conflict],
  [410, Gone],
  [412, FingerprintMismatch],
  [413, InvalidInput],
  [415, InvalidInput],
  [422, InvalidInput],
  [503, Unavailable],
]);

/** @param {any} error */
function split(error) {
  /** @type {Record<string, unknown>} */
  const details = {};
  for (const [k, v] of Object.entries(error ?? {})) {
    if (k !== "code" && k !== "message" && k !== "type") details[k] = v;
  }
  return details;
}

/**
 * The error for a status and the inside of its `{"error": ...}` body.
 * @param {number} status
 * @param {any} error
 * @param {string} fallback
 * @param {Headers} [headers]
 */
function make(status, error, fallback, headers) {
  const isObject = error && typeof error === "object";
  const code = isObject && error.code != null ? String(error.code) : `http_${status}`;
  const message = isObject && error.message != null ? String(error.message) : fallback;
  const Cls = BY_STATUS.get(status) ?? BrokerError;
  return new Cls(status, code, message, isObject ? split(error) : {}, headers);
}

/**
 * The error for an error response (its body read), whatever its body is.
 * @param {Response} response
 * @returns {Promise<BrokerError>}
 */
export async function fromResponse(response) {
  let body = null;
  try {
    body = JSON.parse(await response.text());
  } catch {
    body = null;
  }
  const error = body && typeof body === "object" ? body.error : null;
  return make(response.status, error, response.statusText, response.headers);
}

/**
 * The error a bulk answer's result stands for; null for an accepted one.
 * @param {{status?: number, error?: any}} result
 */
export function errorForResult(result) {
  const status = Number(result.status ?? 0);
  if (status === 200) return null;
  return make(status, result.error ?? {}, "");
}

const FRAME_STATUS = new Map([
  ["unauthorized", 401],
  ["forbidden", 403],
  ["invalid_cursor", 400],
]);

/**
 * The error for a WebSocket error frame that refuses the connection (an unknown key, a
 * missing scope, a bad `after`): the status the same refusal has over HTTP.
 * @param {any} frame
 */
export function fromFrame(frame) {
  const code = String(frame.code ?? "error");
  return make(FRAME_STATUS.get(code) ?? 400, { ...frame, code }, "");
}
