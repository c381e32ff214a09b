/**
 * Webhook subscriptions (`/admin/webhooks`; the key needs the `admin` scope) as request
 * descriptions, like calls.js. Reads are sent again after a connection error or a 503;
 * a change, a new subscription and a removal are not (none carries an Idempotency-Key).
 */

import { fields, seg } from "./calls.js";

/** Which events a subscription gets. @typedef {{events?: string[], agents?: string[] | null, types?: string[] | null}} Matching */

/**
 * A new subscription; the broker's defaults for the options not given.
 * @param {string} url
 * @param {Matching & {secret?: string, enabled?: boolean, description?: string | null}} options
 * @returns {import("./calls.js").Call}
 */
export function createWebhook(url, options = {}) {
  return { method: "POST", path: "/admin/webhooks", json: fields({ ...options, url }) };
}

/** @returns {import("./calls.js").Call} */
export const listWebhooks = () => ({ method: "GET", path: "/admin/webhooks", retry: true });

/** @param {string} id @returns {import("./calls.js").Call} */
export const getWebhook = (id) => ({ method: "GET", path: `/admin/webhooks/${seg(id)}`, retry: true });

/**
 * The fields to change, as given: a null is sent (`agents: null` is every agent again,
 * `description: null` none); an undefined one is left out.
 * @param {string} id
 * @param {Record<string, unknown>} changes
 * @returns {import("./calls.js").Call}
 */
export function updateWebhook(id, changes) {
  /** @type {Record<string, unknown>} */
  const json = {};
  for (const [k, v] of Object.entries(changes)) if (v !== undefined) json[k] = v;
  return { method: "PATCH", path: `/admin/webhooks/${seg(id)}`, json };
}

/** @param {string} id @returns {import("./calls.js").Call} */
export const deleteWebhook = (id) => ({ method: "DELETE", path: `/admin/webhooks/${seg(id)}` });

/** @param {string} id @param {number | undefined} limit @returns {import("./calls.js").Call} */
export const deliveries = (id, limit) => ({
  method: "GET",
  path: `/admin/webhooks/${seg(id)}/deliveries`,
  params: fields({ limit }),
  retry: true,
});
