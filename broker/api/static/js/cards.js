// One pending interrupt as a card: what is asked, by whom, the votes so far, and the form
// that answers it. Answers are checked against the declared schema first; refusals are
// put in plain words (refusals.js). An answer the broker holds for its undo window shows
// the countdown and Undo (undo.js); a vote that decides nothing leaves the card open.

import { get, post } from "./api.js";
import { check } from "./schema.js";
import { answerForm, declaredSchema, kindOf } from "./forms.js";
import { append, h, questionText, shortId, timeEl, json } from "./dom.js";
import { explain } from "./refusals.js";
import { forgetHeld, heldLine, keepHeld, keptHeld } from "./undo.js";
import { approvalSummary, showVotes } from "./votes.js";
import { assigneeText, resolvedBy } from "./words.js";

export { explain } from "./refusals.js";
export {
  answerer, answerName, answerText, assigneeText, commentLine, isRejection, resolvedBy, setAnswerer, who,
} from "./words.js";

// hooks.onAnswered(record, resolution) after an answer that resolved it; hooks.onVoted(
// record) after a vote that decided nothing (the card stays open, showing it);
// hooks.onRefused(record, err) when the interrupt turned out to be closed (the card then
// stays, showing why); hooks.onRenewed(record, card) when the question changed since the
// card showed it (the answer is bound to what was shown, If-Match) and a new card shows
// it as it is now. An answer held for its undo window keeps the card (`data-held`) with
// its countdown (hooks.onHeld(record)) until the interrupt is resolved or the answer
// withdrawn (`release`; hooks.onReleased(record)).
export function interruptCard(record, hooks = {}) {
  const error = h("p", { class: "error", role: "alert", dataset: { error: "" } });
  const note = h("p", { class: "note", role: "status", dataset: { note: "" } });
  const votes = h("div", { class: "approval", dataset: { approval: "" } });
  const card = h("li", {
    class: "card interrupt",
    dataset: { interruptId: record.id, runId: record.run_id, agent: record.agent_id, kind: kindOf(record) },
  });
  card.record = record;
  // the interrupt as the broker now has it: its votes so far
  card.refresh = (fresh) => {
    card.record = fresh;
    showVotes(votes, fresh.approval);
  };
  card.refresh(record);

  // the broker holds the answer for its undo window: the form gives way to the countdown
  const hold = (accepted, value, focus = true) => {
    keepHeld(accepted, value);
    card.dataset.held = "1";
    form.hidden = true;
    if (card.pick) {
      card.pick.checked = false;
      card.pick.disabled = true;
      card.pick.dispatchEvent(new Event("change"));
    }
    const line = heldLine(accepted, value, { onWithdrawn: (fresh) => card.release(fresh) });
    form.after(line);
    if (focus) line.querySelector("button")?.focus();
    hooks.onHeld?.(card.record);
  };
  // the answer was withdrawn: the question is answerable again
  card.release = (fresh) => {
    const line = card.querySelector("[data-held]");
    forgetHeld(card.record.id);
    // Undo had the focus (or lost it to the page while it was being sent)
    const focused = Boolean(line) && (line.contains(document.activeElement) || document.activeElement === document.body);
    line?.stop();
    line?.remove();
    delete card.dataset.held;
    if (fresh) card.refresh(fresh);
    form.hidden = false;
    if (card.pick) card.pick.disabled = false;
    note.textContent = "";
    if (line) hooks.onReleased?.(card.record);
    // back at the answer itself (not its comment)
    if (focused) [...form.querySelectorAll("button, textarea, input, select")].find((el) => el.name !== "comment")?.focus();
  };

  const send = async (value, comment) => {
    error.textContent = "";
    note.textContent = "";
    const schema = declaredSchema(record);
    const problem = schema && check(schema, value);
    if (problem) {
      error.textContent = `Not sent: the answer does not fit the expected shape. At ${problem.path}: ${problem.message}.`;
      return false;
    }
    card.inflight = true;
    try {
      const body = { value };
      if (comment) body.comment = comment;
      if (resolvedBy()) body.resolved_by = resolvedBy();
      // the answer is for the question this card shows, and no other version of it
      const bound = record.fingerprint ? { "if-match": `"${record.fingerprint}"` } : {};
      const path = `/interrupts/${encodeURIComponent(record.id)}/resolve`;
      const answered = await post(path, body, bound);
      if (answered.status === "accepted") hold(answered, value);
      else if (answered.status === "pending") {
        // a vote that decides nothing yet: the card stays open, showing it
        card.refresh(answered);
        note.textContent = answered.approval
          ? `Your vote is recorded: ${approvalSummary(answered.approval)}.`
          : "Your answer is recorded.";
        const box = form.querySelector("textarea[name=comment]");
        if (box) box.value = "";
        hooks.onVoted?.(answered);
      } else hooks.onAnswered?.(record, answered.resolution);
      return true;
    } catch (err) {
      error.textContent = explain(err, record);
      if (err.status === 412) {
        await renew(card, record, hooks, error.textContent);
        return false;
      }
      if ([404, 409, 410].includes(err.status) && err.code !== "already_voted") {
        closeCard(card);
        hooks.onRefused?.(record, err);
      }
      return false;
    } finally {
      card.inflight = false;
      card.dispatchEvent(new Event("settled"));
    }
  };

  const title = questionText(record.value);
  const pick = hooks.onPick
    ? h("input", { type: "checkbox", class: "pick", "aria-label": `Select: ${title || record.agent_id}` })
    : null;
  pick?.addEventListener("change", () => hooks.onPick(record, pick.checked));
  card.pick = pick;
  const form = answerForm(record, send);
  append(card, [
    h("header", {},
      pick,
      h("h3", {}, record.agent_id),
      h("span", { class: "kind" }, record.type ?? kindOf(record)),
      h("span", { class: "meta" },
        h("span", {}, "thread ", h("code", {}, shortId(record.thread_id))),
        h("a", { href: `#/runs/${encodeURIComponent(record.run_id)}` }, `run ${shortId(record.run_id)}`),
        h("span", {}, "asked ", timeEl(record.created_at)),
        record.expires_at ? h("span", {}, "expires ", timeEl(record.expires_at)) : null,
        record.undo?.undo_s ? h("span", {}, `undo within ${record.undo.undo_s} s`) : null)),
    title ? h("p", { class: "question" }, title) : null,
    people(record),
    votes,
    h("details", {}, h("summary", {}, "Full value"), h("pre", {}, json(record.value))),
    form,
    note,
    error,
  ]);
  // an answer this tab gave before a reload, still held (the same hold, not a later
  // one of someone else's): its countdown and Undo again
  const given = record.status === "accepted" ? keptHeld(record.id) : null;
  if (given && given.accepted.undo?.held_until === record.undo?.held_until) hold(given.accepted, given.value, false);
  else if (given) forgetHeld(record.id);
  return card;
}

// The card of a question that changed since it was shown, replaced by one showing it as
// it is now, with the refusal in words on it.
async function renew(card, record, hooks, message) {
  let fresh;
  try {
    fresh = await get(`/interrupts/${encodeURIComponent(record.id)}`);
  } catch {
    return;
  }
  const next = interruptCard(fresh, hooks);
  next.querySelector("[data-error]").textContent = message;
  next.dataset.renewed = "1";
  card.replaceWith(next);
  hooks.onRenewed?.(fresh, next);
}

// Who may answer (assignees) and who follows (watchers), when the interrupt names any.
export function people(record) {
  const line = (label, names) =>
    names?.length ? h("span", {}, `${label} `, names.map(assigneeText).join(", ")) : null;
  const assignees = line("Assigned to", record.assignees);
  const watchers = line("Watched by", record.watchers);
  if (!assignees && !watchers) return null;
  return h("p", { class: "meta people", dataset: { people: "" } }, assignees, watchers);
}

export function closeCard(card) {
  card.classList.add("closed-card");
  const form = card.querySelector("form.answer");
  if (card.pick) {
    card.pick.checked = false;
    card.pick.disabled = true;
    card.pick.dispatchEvent(new Event("change"));
  }
  if (form) {
    form.dataset.closed = "1";
    for (const el of form.querySelectorAll("button, input, textarea, select")) el.disabled = true;
  }
}
