// One pending interrupt as a card: what is asked, by whom, and the form that answers it.
// Answers are checked against the declared schema first; refusals are put in plain words.

import { post } from "./api.js";
import { check } from "./schema.js";
import { answerForm, declaredSchema, kindOf } from "./forms.js";
import { h, questionText, shortId, time, timeEl, json } from "./dom.js";

const ANSWERER = "broker.answerer";
const CHANNELS = { rest: "the REST API", agui: "AG-UI", link: "an action link", expiry: "its deadline" };

export function answerer() {
  return localStorage.getItem(ANSWERER) ?? "";
}

export function setAnswerer(name) {
  localStorage.setItem(ANSWERER, name.trim());
}

export function who(resolution) {
  const name = resolution?.resolved_by || resolution?.key_id || "someone";
  const channel = CHANNELS[resolution?.channel] ?? resolution?.channel;
  return channel ? `${name} via ${channel}` : name;
}

export function answerText(value) {
  if (value === true) return "Approved";
  if (value === false) return "Rejected";
  if (typeof value === "string") return `“${value}”`;
  if (value && typeof value === "object") {
    if (value.cancelled === true) return "Cancelled";
    if (typeof value.chosen_label === "string") return value.chosen_label;
    if (Array.isArray(value.decisions)) return value.decisions.map((d) => d?.type).join(", ");
  }
  return JSON.stringify(value);
}

// Why an answer was refused, in words a person can act on.
export function explain(err, record) {
  const e = err.error ?? {};
  switch (err.status) {
    case 0:
      return "Could not reach the broker. Check the connection and try again.";
    case 403:
      return "Your API key may not answer questions (it lacks the interrupts:resolve scope).";
    case 404:
      return "This question no longer exists.";
    case 409:
      if (err.code === "already_resolved") {
        const r = e.resolution ?? {};
        return `Someone else answered first: ${who(r)} answered ${answerText(r.value)}` +
          `${r.resolved_at ? ` at ${time(r.resolved_at)}` : ""}. Your answer was not used.`;
      }
      return "This question was closed: its run ended before your answer arrived. Your answer was not used.";
    case 410:
      return `This question expired${record.expires_at ? ` at ${time(record.expires_at)}` : ""} ` +
        "and no longer takes answers.";
    case 413:
      return "This answer is too large for the broker.";
    case 422:
      return `The broker did not accept this answer: ${err.message}`;
    default:
      return `The broker refused this answer (${err.status}): ${err.message}`;
  }
}

// hooks.onAnswered(record, resolution) after an accepted answer; hooks.onRefused(record,
// err) when the interrupt turned out to be closed (the card then stays, showing why).
export function interruptCard(record, hooks = {}) {
  const error = h("p", { class: "error", role: "alert", dataset: { error: "" } });
  const card = h("li", {
    class: "card interrupt",
    dataset: { interruptId: record.id, runId: record.run_id, agent: record.agent_id, kind: kindOf(record) },
  });

  const send = async (value) => {
    error.textContent = "";
    const schema = declaredSchema(record);
    const problem = schema && check(schema, value);
    if (problem) {
      error.textContent = `Not sent: the answer does not fit the expected shape. At ${problem.path}: ${problem.message}.`;
      return false;
    }
    card.inflight = true;
    try {
      const body = { value };
      if (answerer()) body.resolved_by = answerer();
      const resolved = await post(`/interrupts/${encodeURIComponent(record.id)}/resolve`, body);
      hooks.onAnswered?.(record, resolved.resolution);
      return true;
    } catch (err) {
      error.textContent = explain(err, record);
      if ([404, 409, 410].includes(err.status)) {
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
  card.append(
    h("header", {},
      h("h3", {}, record.agent_id),
      h("span", { class: "kind" }, record.type ?? kindOf(record)),
      h("span", { class: "meta" },
        h("span", {}, "thread ", h("code", {}, shortId(record.thread_id))),
        h("a", { href: `#/runs/${encodeURIComponent(record.run_id)}` }, `run ${shortId(record.run_id)}`),
        h("span", {}, "asked ", timeEl(record.created_at)),
        record.expires_at ? h("span", {}, "expires ", timeEl(record.expires_at)) : null)),
    title ? h("p", { class: "question" }, title) : null,
    h("details", {}, h("summary", {}, "Full value"), h("pre", {}, json(record.value))),
    answerForm(record, send),
    error,
  );
  return card;
}

export function closeCard(card) {
  card.classList.add("closed-card");
  const form = card.querySelector("form.answer");
  if (form) {
    form.dataset.closed = "1";
    for (const el of form.querySelectorAll("button, input, textarea, select")) el.disabled = true;
  }
}
