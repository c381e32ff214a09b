/**
 * When to send a request again, and how long to wait first.
 *
 * A request is sent again only where that is safe: a read; a write carrying an
 * `Idempotency-Key` (the broker answers a repeat with the first response and does the
 * write once); and any request whose connection was never made. It is sent again after
 * a connection error or a `503` (Redis unavailable, the API stopping).
 */

/** @typedef {{attempts?: number, backoffMs?: number, maxBackoffMs?: number}} RetryOptions */

/** How often and how patiently to retry: `attempts` in all (the first included) for a
 * request; for a follower, failed reconnects in a row before giving up. Waits double
 * from `backoffMs` up to `maxBackoffMs`; a 503's `Retry-After` is honoured up to it. */
export class Retry {
  /** @param {RetryOptions} [options] */
  constructor({ attempts = 5, backoffMs = 200, maxBackoffMs = 5000 } = {}) {
    this.attempts = attempts;
    this.backoffMs = backoffMs;
    this.maxBackoffMs = maxBackoffMs;
  }

  /**
   * The wait (ms) after `failures` failed tries.
   * @param {number} failures
   * @param {number | null} [retryAfterS]
   */
  delay(failures, retryAfterS = null) {
    const base = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** Math.max(0, failures - 1));
    if (retryAfterS != null) return Math.min(this.maxBackoffMs, Math.max(base, retryAfterS * 1000));
    return base;
  }
}

const NEVER_CONNECTED = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT"]);

/**
 * True for a fetch failure whose connection was never made (so nothing was sent).
 * Only Node says so (the error's `cause.code`); elsewhere a failure counts as maybe sent.
 * @param {unknown} error
 */
export function neverConnected(error) {
  const cause = /** @type {any} */ (error)?.cause;
  return Boolean(cause && (NEVER_CONNECTED.has(cause.code) || cause.name === "ConnectTimeoutError"));
}

/**
 * The wait (ms) before sending again after `failures` failed tries, or null to give up.
 * @param {Retry} retry
 * @param {number} failures
 * @param {boolean} safe the request may be sent again
 * @param {{error?: unknown, response?: Response}} got
 */
export function waitBeforeRetry(retry, failures, safe, { error, response }) {
  if (failures >= retry.attempts) return null;
  if (error !== undefined) return safe || neverConnected(error) ? retry.delay(failures) : null;
  if (response && response.status === 503 && safe) {
    const raw = response.headers.get("retry-after");
    const after = raw === null || raw === "" ? NaN : Number(raw);
    return retry.delay(failures, Number.isFinite(after) ? after : null);
  }
  return null;
}

/**
 * Resolves after `ms`, or rejects when `signal` aborts.
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const done = () => {
      signal?.removeEventListener("abort", stop);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", stop, { once: true });
  });
}
