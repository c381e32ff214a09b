// Answers and the people behind them, in words: who answered (and through what), what
// they answered, their comment, and the names questions are assigned to.

import { accessToken } from "./api.js";
import { h } from "./dom.js";

const ANSWERER = "broker.answerer";
const CHANNELS = { rest: "the REST API", agui: "AG-UI", link: "an action link", expiry: "its deadline" };

export function answerer() {
  return localStorage.getItem(ANSWERER) ?? "";
}

// The `resolved_by` an answer sends: none for a signed-in person (the broker names them
// from their token), and with a key only a name someone typed in "Answer as".
export function resolvedBy() {
  return accessToken() ? "" : answerer();
}

export function setAnswerer(name) {
  localStorage.setItem(ANSWERER, name.trim());
}

// Who answered: the person, else the name sent for them, else the key.
export function answerName(resolution) {
  const person = resolution?.person;
  return person?.email || person?.sub || resolution?.resolved_by || resolution?.key_id || "someone";
}

export function who(resolution) {
  const name = answerName(resolution);
  const channel = CHANNELS[resolution?.channel] ?? resolution?.channel;
  return channel ? `${name} via ${channel}` : name;
}

export function answerText(value) {
  if (value === true) return "Approved";
  if (value === false) return "Rejected";
  if (typeof value === "string") return `“${value}”`;
  if (value && typeof value === "object") {
    if (value.cancelled === true) return "Cancelled";
    // the decision of a vote (broker/core/votes.py)
    if (typeof value.approved === "boolean" && Array.isArray(value.votes)) return value.approved ? "Approved" : "Rejected";
    if (typeof value.chosen_label === "string") return value.chosen_label;
    if (Array.isArray(value.decisions)) return value.decisions.map((d) => d?.type).join(", ");
  }
  return JSON.stringify(value);
}

// A rejection: an approval's false, or a review with a rejected action.
export function isRejection(value) {
  if (value === false) return true;
  return Boolean(value && Array.isArray(value.decisions) && value.decisions.some((d) => d?.type === "reject"));
}

// The comment sent with an answer, as a line: "Reason: …" for a rejection.
export function commentLine(resolution) {
  const text = resolution?.comment;
  if (!text) return null;
  return h("p", { class: "comment", dataset: { comment: "" } },
    h("strong", {}, isRejection(resolution.value) ? "Reason: " : "Comment: "), text);
}

// "user:ada@example.com" → "ada@example.com", "group:finance" → "finance (group)";
// "nobody:invalid-assignees": the interrupt declared assignees none of which is a name
export function assigneeText(name) {
  const text = String(name);
  if (text === "nobody:invalid-assignees") return "nobody (its assignees are invalid)";
  if (text.startsWith("user:")) return text.slice(5);
  if (text.startsWith("group:")) return `${text.slice(6)} (group)`;
  return text;
}
