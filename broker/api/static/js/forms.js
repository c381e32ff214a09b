// Answer forms, chosen from the shape of an interrupt's value (never from the agent):
// a review of tool calls, a choice of time slots, an approval, a question, or JSON.

import { skeleton } from "./schema.js";
import { h, json, uid } from "./dom.js";

const DECISION_LABELS = { approve: "Approve", edit: "Edit", reject: "Reject", respond: "Respond" };

export function declaredSchema(record) {
  const schema = record.response_schema;
  if (schema && typeof schema === "object" && Object.keys(schema).length) return schema;
  const value = record.value;
  if (value && typeof value === "object" && value.responseSchema && typeof value.responseSchema === "object") {
    return value.responseSchema;
  }
  return null;
}

// The broker names each interrupt's kind (broker/core/shapes.py), the same one its
// action links and their pages use.
export function kindOf(record) {
  return record.kind ?? "json";
}

// `send(value, comment)` answers; it resolves true once the broker accepted the answer.
export function answerForm(record, send) {
  const kind = kindOf(record);
  const build = { review, slots, approval, ask, json: jsonEditor }[kind];
  const form = build(record, send);
  form.classList.add("answer");
  const comment = commentField(kind === "approval" || kind === "review" ? "Reason or comment (optional)" : "Comment (optional)");
  form.insertBefore(comment, form.querySelector(":scope > .actions"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = form.answerFor(event.submitter);
    if (value === undefined) return;
    setBusy(form, true);
    try {
      await send(value, comment.read());
    } finally {
      setBusy(form, false);
    }
  });
  return form;
}

// A note kept with the answer (`comment`, at most 2000 characters); for a rejection, why.
export function commentField(label) {
  const id = uid("comment");
  const input = h("textarea", { id, name: "comment", rows: 1, maxlength: 2000, autocomplete: "off" });
  const box = h("div", { class: "field comment-field" }, h("label", { for: id }, label), input);
  box.read = () => input.value.trim() || undefined;
  box.clear = () => {
    input.value = "";
  };
  return box;
}

function setBusy(form, busy) {
  form.setAttribute("aria-busy", String(busy));
  for (const b of form.querySelectorAll("button")) b.disabled = busy || form.dataset.closed === "1";
}

function approval() {
  const form = h(
    "form",
    { "aria-label": "Answer" },
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary", value: "approve" }, "Approve"),
      h("button", { type: "submit", class: "danger", value: "reject" }, "Reject")),
  );
  form.answerFor = (submitter) => submitter?.value !== "reject";
  return form;
}

function ask(record) {
  const id = uid("answer");
  const input = h("textarea", { id, name: "answer", rows: 2, required: true, autocomplete: "off" });
  const form = h(
    "form",
    { "aria-label": "Answer" },
    h("label", { for: id }, "Your answer"),
    input,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Send")),
  );
  // Enter sends, Shift+Enter starts a new line
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.answerFor = () => input.value.trim() || (input.reportValidity(), undefined);
  return form;
}

function slots(record) {
  const v = record.value;
  const facts = [v.topic && `Topic: ${v.topic}`, v.attendee && `With: ${v.attendee}`].filter(Boolean);
  const form = h(
    "form",
    { "aria-label": "Pick a time" },
    facts.length ? h("p", { class: "muted" }, facts.join(" · ")) : null,
    h("div", { class: "slots", role: "group", "aria-label": "Time slots" },
      v.slots.map((s, i) => h("button", { type: "submit", value: String(i), title: s.iso }, s.label))),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "danger", value: "cancel" }, "Cancel meeting")),
  );
  form.answerFor = (submitter) => {
    if (submitter?.value === "cancel") return { cancelled: true };
    const slot = v.slots[Number(submitter?.value)];
    return slot ? { chosen_time: slot.iso, chosen_label: slot.label } : undefined;
  };
  return form;
}

function allowedFor(value, action) {
  const config = value.review_configs.find((c) => c && c.action_name === action.name);
  return (config?.allowed_decisions ?? []).filter((d) => d in DECISION_LABELS);
}

function argsEditor(args, prefix) {
  const fields = [];
  const box = h("div", { class: "args" });
  for (const [name, value] of Object.entries(args ?? {})) {
    const id = `${prefix}-arg-${name}`;
    const isText = typeof value === "string";
    const long = isText && (value.length > 60 || value.includes("\n"));
    const text = isText ? value : JSON.stringify(value);
    const input = long
      ? h("textarea", { id, name, rows: 3 }, text)
      : h("input", { id, name, value: text, autocomplete: "off" });
    if (!isText) input.classList.add("code");
    fields.push({ name, input, isText });
    box.append(h("div", { class: "field" }, h("label", { for: id }, isText ? name : `${name} (JSON)`), input));
  }
  box.read = () => {
    const out = {};
    for (const { name, input, isText } of fields) {
      if (isText) {
        out[name] = input.value;
        continue;
      }
      try {
        out[name] = JSON.parse(input.value);
      } catch {
        throw new Error(`the argument "${name}" is not valid JSON`);
      }
    }
    return out;
  };
  return box;
}

function review(record) {
  const value = record.value;
  const parts = value.action_requests.map((action, n) => {
    const prefix = uid("action");
    const allowed = allowedFor(value, action);
    const editor = argsEditor(action.args, prefix);
    const message = h("textarea", { id: `${prefix}-message`, rows: 2, name: "message" });
    const editBox = h("div", { hidden: true }, editor);
    const messageBox = h("div", { class: "field", hidden: true },
      h("label", { for: `${prefix}-message` }, "Message to the agent"), message);
    const radios = allowed.map((d) =>
      h("label", {},
        h("input", { type: "radio", name: `decision-${prefix}`, value: d, required: true,
          checked: allowed.length === 1 }),
        DECISION_LABELS[d]));
    const box = h(
      "fieldset",
      { class: "action", dataset: { action: action.name ?? "" } },
      h("legend", {}, action.name ?? `action ${n + 1}`),
      action.description ? h("p", { class: "muted description" }, action.description) : null,
      h("pre", {}, json(action.args ?? {})),
      allowed.length
        ? h("div", { class: "choices", role: "radiogroup", "aria-label": `Decision for ${action.name}` }, radios)
        : h("p", { class: "error" }, "Its review config allows no decision this page knows."),
      editBox,
      messageBox,
    );
    const sync = () => {
      const chosen = box.querySelector("input[type=radio]:checked")?.value;
      editBox.hidden = chosen !== "edit";
      messageBox.hidden = chosen !== "reject" && chosen !== "respond";
    };
    box.addEventListener("change", sync);
    sync();
    box.decision = () => {
      const chosen = box.querySelector("input[type=radio]:checked")?.value;
      if (!chosen) throw new Error(`choose a decision for ${action.name}`);
      if (chosen === "edit") return { type: "edit", edited_action: { name: action.name, args: editor.read() } };
      if (chosen === "reject" || chosen === "respond") {
        const text = message.value.trim();
        if (chosen === "respond" && !text) throw new Error(`write a response for ${action.name}`);
        return text ? { type: chosen, message: text } : { type: chosen };
      }
      return { type: chosen };
    };
    return box;
  });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { "aria-label": "Review the tool calls" },
    parts,
    error,
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, parts.length > 1 ? "Send decisions" : "Send decision")),
  );
  form.noValidate = true;
  form.answerFor = () => {
    try {
      error.textContent = "";
      return { decisions: parts.map((p) => p.decision()) };
    } catch (err) {
      error.textContent = `Not sent: ${err.message}.`;
      return undefined;
    }
  };
  return form;
}

function jsonEditor(record) {
  const schema = declaredSchema(record);
  const id = uid("json");
  const start = schema ? skeleton(schema) : null;
  const input = h("textarea", { id, class: "code", rows: 5, spellcheck: "false" }, json(start));
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { "aria-label": "Answer as JSON" },
    schema
      ? h("details", { open: true, class: "schema" }, h("summary", {}, "Expected answer (JSON Schema)"), h("pre", {}, json(schema)))
      : null,
    h("label", { for: id }, "Answer (JSON)"),
    input,
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Send")),
  );
  form.answerFor = () => {
    error.textContent = "";
    try {
      return JSON.parse(input.value);
    } catch (err) {
      error.textContent = `Not sent: this is not valid JSON (${err.message}).`;
      return undefined;
    }
  };
  return form;
}
