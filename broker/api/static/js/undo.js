// The undo window of an accepted answer: "Approved — resuming in 8 s · Undo", counting
// down to the broker's `held_until`, and the Undo button that withdraws the answer
// (`POST /interrupts/{id}/withdraw`) while the window is open. The answers this tab gave
// that are held are kept in its sessionStorage, so a reload shows them again, with Undo.

import { get, post } from "./api.js";
import { h } from "./dom.js";

// What an answer says, in one word: Approved, Rejected, or Answered.
export function verdict(value) {
  if (value === true) return "Approved";
  if (value === false) return "Rejected";
  if (value && typeof value === "object") {
    if (typeof value.approved === "boolean") return value.approved ? "Approved" : "Rejected";
    const types = Array.isArray(value.decisions) ? value.decisions.map((d) => d?.type) : [value.type];
    if (types.includes("reject")) return "Rejected";
    if (types.length && types.every((t) => t === "approve")) return "Approved";
  }
  return "Answered";
}

const KEPT = "broker.held";

function kept() {
  try {
    return JSON.parse(sessionStorage.getItem(KEPT) ?? "{}") ?? {};
  } catch {
    return {};
  }
}

function store(all) {
  try {
    if (Object.keys(all).length) sessionStorage.setItem(KEPT, JSON.stringify(all));
    else sessionStorage.removeItem(KEPT);
  } catch {
    // storage refused (full, or off in this frame): only a reload loses the countdown
  }
}

// An answer this tab gave, held: `accepted` is the broker's reply, `value` the answer.
export function keepHeld(accepted, value) {
  store({ ...kept(), [accepted.id]: { accepted, value } });
}

export function forgetHeld(id) {
  const all = kept();
  if (!(id in all)) return;
  delete all[id];
  store(all);
}

// The held answer this tab gave to interrupt `id` ({accepted, value}), or null.
export function keptHeld(id) {
  return kept()[id] ?? null;
}

// Whether a card shows `record`: pending, or held with an answer this tab gave.
export function onCard(record) {
  return record.status === "pending" || (record.status === "accepted" && keptHeld(record.id) !== null);
}

function keptHeldIds() {
  return Object.keys(kept());
}

// The interrupts this tab answered, before a reload, that the broker still holds for their
// undo window (the others are forgotten; unreachable, they are left for the next load).
export async function stillHeld() {
  const records = await Promise.all(
    keptHeldIds().map((id) =>
      get(`/interrupts/${encodeURIComponent(id)}`).catch((err) => (err.status === 0 ? null : { id })),
    ),
  );
  const still = [];
  for (const record of records.filter(Boolean)) {
    if (record.status === "accepted") still.push(record);
    else forgetHeld(record.id);
  }
  return still;
}

// Whole seconds left until `iso` by this page's clock (never below 0).
export function secondsLeft(iso) {
  const ms = Date.parse(iso) - Date.now();
  return Number.isNaN(ms) ? 0 : Math.max(0, Math.ceil(ms / 1000));
}

// Why a withdrawal was refused, in words.
export function undoRefusal(err) {
  if (err.status === 0) return "Not undone: could not reach the broker. Try again.";
  switch (err.code) {
    case "undo_window_closed":
      return "Too late to undo: the window closed";
    case "not_held":
      // released once its window closed, or withdrawn already (elsewhere)
      if (err.error?.status === "resolved") return "Too late to undo: the window closed and the run resumed with this answer";
      if (err.error?.status === "pending") return "Nothing to undo: this answer was withdrawn already";
      return `Nothing to undo: this question is ${err.error?.status ?? "no longer held"}`;
    case "not_author":
      return "Not undone: only whoever gave this answer may undo it";
    default:
      if (err.status === 404) return "Not undone: this question no longer exists";
      return `Not undone: ${err.message}`;
  }
}

// The line for an answer the broker holds: `accepted` is the broker's reply (status
// "accepted", `undo.held_until`), `value` the answer sent. onWithdrawn(interrupt) once
// the answer is withdrawn (the interrupt pending again). The line's `stop()` ends it.
export function heldLine(accepted, value, { onWithdrawn }) {
  const word = verdict(accepted.resolution?.value ?? value);
  const heldUntil = accepted.undo?.held_until;
  const text = h("span", { dataset: { countdown: "" } });
  const undo = h("button", { type: "button", class: "undo" }, "Undo");
  const tail = h("span", {}, " · ", undo);
  const error = h("p", { class: "error", role: "alert", dataset: { undoError: "" } });
  const line = h("p", { class: "held", dataset: { undo: "" } }, text, tail);
  const box = h("div", { class: "held-box", dataset: { held: "" } }, line, error);
  let timer = null;

  const finish = () => {
    clearTimeout(timer);
    forgetHeld(accepted.id);
    text.textContent = `${word} — resuming`;
    tail.remove();
  };
  const tick = () => {
    const left = secondsLeft(heldUntil);
    if (left <= 0) return finish();
    text.textContent = `${word} — resuming in ${left} s`;
    // the next whole second by the page's clock
    const ms = Date.parse(heldUntil) - Date.now();
    timer = setTimeout(tick, ms % 1000 || 1000);
  };
  box.stop = () => clearTimeout(timer);

  undo.addEventListener("click", async () => {
    error.textContent = "";
    undo.disabled = true;
    try {
      const path = `/interrupts/${encodeURIComponent(accepted.id)}/withdraw`;
      const fresh = await post(path);
      box.stop();
      forgetHeld(accepted.id);
      onWithdrawn(fresh);
    } catch (err) {
      error.textContent = undoRefusal(err);
      // only an unreachable broker leaves something to try again
      if (err.status === 0) undo.disabled = false;
      else finish();
    }
  });
  tick();
  return box;
}
