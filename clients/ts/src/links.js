/**
 * Action links: the signed one-click links an `interrupt.created` webhook carries, one
 * per choice (`approve`, `reject`, a slot's name...). Using one is the POST its
 * confirmation page's button sends; the client sends it to its own broker, since the
 * link's host is the broker's public URL, which may not be where the client reaches it.
 */

import { seg } from "./calls.js";

/**
 * The link of `choice` among an interrupt's action links; an error naming the choices
 * there are otherwise.
 * @param {{choice: string, url: string}[]} links
 * @param {string} choice
 */
export function linkFor(links, choice) {
  const found = links.find((link) => link.choice === choice);
  if (found) return found;
  throw new RangeError(`no link for ${JSON.stringify(choice)}; choices: ${links.map((l) => l.choice).join(", ")}`);
}

/**
 * A link's token: from the link, its URL (`…/links/<token>`), or the token itself.
 * @param {{url: string} | string} link
 */
export function linkToken(link) {
  const url = (typeof link === "string" ? link : link.url).replace(/\/+$/, "");
  const at = url.lastIndexOf("/links/");
  return (at === -1 ? url : url.slice(at + "/links/".length)).split("?", 1)[0];
}

/**
 * The POST of a link's confirmation form.
 * @param {{url: string} | string} link
 * @param {{answer?: string, comment?: string, fingerprint?: string}} options
 * @returns {import("./calls.js").Call}
 */
export function useLink(link, { answer, comment, fingerprint } = {}) {
  const token = linkToken(link);
  /** @type {Record<string, string>} */
  const form = { token };
  for (const [k, v] of Object.entries({ answer, comment, fingerprint })) if (v != null) form[k] = v;
  return { method: "POST", path: `/links/${seg(token)}`, form };
}

/**
 * The GET of a link: its confirmation page, which changes nothing (what a mail scanner
 * following the link gets).
 * @param {{url: string} | string} link
 * @returns {import("./calls.js").Call}
 */
export function showLink(link) {
  return { method: "GET", path: `/links/${seg(linkToken(link))}`, retry: true };
}
