/**
 * Each REST route as a request description: what to send and whether sending it again
 * is safe. Reads are, and so are writes that carry an `Idempotency-Key` (the broker
 * answers a repeat with the first response and does nothing twice). The client only
 * does the I/O.
 */

/**
 * @typedef {object} Call
 * @property {string} method
 * @property {string} path
 * @property {Record<string, unknown>} [params]
 * @property {unknown} [json]
 * @property {Record<string, string>} [form]
 * @property {Record<string, string>} [headers]
 * @property {boolean} [retry] safe to send again after a connection error or a 503
 */

/** @param {string} value */
export const seg = (value) => encodeURIComponent(value);

/** A fresh Idempotency-Key. */
export function newKey() {
  return globalThis.crypto.randomUUID();
}

/**
 * Drops the undefined and null fields, and renames camelCase ones to the broker's names.
 * @param {Record<string, unknown>} given
 * @returns {Record<string, any>}
 */
export function fields(given) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [k, v] of Object.entries(given)) {
    if (v !== undefined && v !== null) out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  }
  return out;
}

export const listAgents = () => ({ method: "GET", path: "/agents", retry: true });

/**
 * @param {string} agentId
 * @param {unknown} input
 * @param {{threadId?: string, metadata?: Record<string, unknown>, idempotencyKey?: string}} options
 * @returns {Call}
 */
export function startRun(agentId, input, { threadId, metadata, idempotencyKey } = {}) {
  const json = fields({ agentId, input: input ?? {}, threadId, metadata });
  const headers = { "Idempotency-Key": idempotencyKey || newKey() };
  return { method: "POST", path: "/runs", json, headers, retry: true };
}

/** @param {string} runId @returns {Call} */
export const getRun = (runId) => ({ method: "GET", path: `/runs/${seg(runId)}`, retry: true });

/** @param {Record<string, unknown>} filters @returns {Call} */
export const listRuns = (filters = {}) => ({
  method: "GET",
  path: "/runs",
  params: fields(filters),
  retry: true,
});

/** @param {string} runId @returns {Call} */
export const cancelRun = (runId) => ({ method: "POST", path: `/runs/${seg(runId)}/cancel` });

/** @param {string} runId */
export const runEventsPath = (runId) => `/runs/${seg(runId)}/events`;

/** @param {Record<string, unknown>} filters @returns {Call} */
export const listInterrupts = (filters = {}) => ({
  method: "GET",
  path: "/interrupts",
  params: fields(filters),
  retry: true,
});

/** @param {string} id @returns {Call} */
export const getInterrupt = (id) => ({ method: "GET", path: `/interrupts/${seg(id)}`, retry: true });

/** @param {string} id @returns {Call} */
export const audit = (id) => ({ method: "GET", path: `/interrupts/${seg(id)}/audit`, retry: true });

/**
 * An answer; its Idempotency-Key is made here when not given, so every retry of this
 * one answer carries the same key and the broker takes it at most once.
 * @param {string} id
 * @param {unknown} value
 * @param {{comment?: string, resolvedBy?: string, ifMatch?: string | null, idempotencyKey?: string}} options
 * @returns {Call}
 */
export function resolve(id, value, { comment, resolvedBy, ifMatch, idempotencyKey } = {}) {
  /** @type {Record<string, string>} */
  const headers = { "Idempotency-Key": idempotencyKey || newKey() };
  if (ifMatch != null) {
    headers["If-Match"] = ifMatch === "*" || ifMatch.includes('"') ? ifMatch : `"${ifMatch}"`;
  }
  const json = { value, ...fields({ comment, resolvedBy }) };
  return { method: "POST", path: `/interrupts/${seg(id)}/resolve`, json, headers, retry: true };
}

/**
 * @param {unknown} value
 * @param {{ids?: string[], filter?: Record<string, string>, comment?: string, resolvedBy?: string}} options
 * @returns {Call}
 */
export function resolveMany(value, { ids, filter, comment, resolvedBy } = {}) {
  if ((ids == null) === (filter == null)) throw new TypeError("give exactly one of ids and filter");
  const json = { ...fields({ ids, filter, comment, resolvedBy }), value };
  return { method: "POST", path: "/interrupts/resolve", json };
}

/**
 * @param {string} id
 * @param {string[]} assignees
 * @param {{watchers?: string[], comment?: string}} options
 * @returns {Call}
 */
export function assign(id, assignees, { watchers, comment } = {}) {
  const json = fields({ assignees, watchers, comment });
  return { method: "POST", path: `/interrupts/${seg(id)}/assign`, json };
}

/** @param {string} id @returns {Call} */
export const withdraw = (id) => ({ method: "POST", path: `/interrupts/${seg(id)}/withdraw` });

/**
 * @param {any} body
 * @returns {{items: any[], nextCursor: string | null}}
 */
export function page(body) {
  return { items: Array.isArray(body?.items) ? body.items : [], nextCursor: body?.next_cursor ?? null };
}

/** `GET /healthz`, `/auth/config`, `/.well-known/jwks.json`, `/metrics`: reads. @param {string} path @returns {Call} */
export const read = (path) => ({ method: "GET", path, retry: true });

/** `GET /readyz`, not sent again after a 503: that is the probe's answer (not ready). @type {Call} */
export const ready = { method: "GET", path: "/readyz" };
