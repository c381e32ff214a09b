// Answering several pending interrupts at once: the selection, "select all shown", and a
// bar with the common answer (Approve / Reject for approvals, JSON otherwise) sent as one
// `POST /interrupts/resolve`; each refused item is listed with the broker's reason.

import { post } from "./api.js";
import { resolvedBy } from "./cards.js";
import { commentField, kindOf } from "./forms.js";
import { fill, h, questionText, uid } from "./dom.js";

export class Bulk {
  // inbox: the Inbox (its items, closed(), refused(), load())
  constructor(root, inbox) {
    this.inbox = inbox;
    this.form = root.querySelector("#bulk-form");
    this.all = root.querySelector("#select-all");
    this.results = root.querySelector("#bulk-results");
    this.selected = new Set();
    this.kindKey = null; // the form is rebuilt only when the kinds selected change
    this.all.addEventListener("change", () => this.selectAll(this.all.checked));
    this.form.addEventListener("submit", (e) => this.submit(e));
  }

  pick(id, on) {
    if (on) this.selected.add(id);
    else this.selected.delete(id);
    this.update();
  }

  // The cards shown in the list, open ones only.
  visible() {
    return [...this.inbox.list.children].filter((c) => c.pick && !c.pick.disabled);
  }

  selectAll(on) {
    for (const card of this.visible()) {
      card.pick.checked = on;
      if (on) this.selected.add(card.dataset.interruptId);
      else this.selected.delete(card.dataset.interruptId);
    }
    this.update();
  }

  // After the list was drawn: nothing stays selected that is not on screen.
  sync() {
    const shown = new Set(this.visible().map((c) => c.dataset.interruptId));
    for (const id of [...this.selected]) {
      if (shown.has(id)) continue;
      this.selected.delete(id);
      const entry = this.inbox.items.get(id);
      if (entry?.card.pick) entry.card.pick.checked = false;
    }
    this.update();
  }

  update() {
    const shown = this.visible();
    this.all.checked = shown.length > 0 && shown.every((c) => c.pick.checked);
    this.all.indeterminate = !this.all.checked && shown.some((c) => c.pick.checked);
    this.all.disabled = shown.length === 0;
    const n = this.selected.size;
    this.form.hidden = n === 0;
    if (!n) {
      this.kindKey = null;
      return;
    }
    const kinds = new Set([...this.selected].map((id) => kindOf(this.inbox.items.get(id)?.record ?? {})));
    const approvals = kinds.size === 1 && kinds.has("approval");
    const key = approvals ? "approval" : "json";
    if (key !== this.kindKey) this.build(approvals);
    this.kindKey = key;
    this.form.querySelector("[data-count]").textContent = `${n} selected`;
  }

  build(approvals) {
    this.comment = commentField(approvals ? "Reason or comment (optional)" : "Comment (optional)");
    this.error = h("p", { class: "error", role: "alert", dataset: { error: "" } });
    const count = h("strong", { dataset: { count: "" } });
    let answer = null;
    if (approvals) {
      fill(this.form, count, this.comment, this.error,
        h("div", { class: "actions" },
          h("button", { type: "submit", class: "primary", value: "approve" }, "Approve selected"),
          h("button", { type: "submit", class: "danger", value: "reject" }, "Reject selected")));
    } else {
      const id = uid("bulk-json");
      answer = h("textarea", { id, class: "code", rows: 3, spellcheck: "false" });
      fill(this.form, count,
        h("div", { class: "field" }, h("label", { for: id }, "Answer for all (JSON)"), answer),
        this.comment, this.error,
        h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Send to selected")));
    }
    this.answerFor = (submitter) => {
      if (approvals) return submitter?.value !== "reject";
      try {
        return JSON.parse(answer.value);
      } catch (err) {
        this.error.textContent = `Not sent: this is not valid JSON (${err.message}).`;
        return undefined;
      }
    };
  }

  async submit(event) {
    event.preventDefault();
    this.error.textContent = "";
    const value = this.answerFor(event.submitter);
    if (value === undefined) return;
    const ids = [...this.selected];
    const body = { ids, value };
    const comment = this.comment.read();
    if (comment) body.comment = comment;
    if (resolvedBy()) body.resolved_by = resolvedBy();
    const buttons = [...this.form.querySelectorAll("button")];
    for (const b of buttons) b.disabled = true;
    let outcome;
    try {
      outcome = await post("/interrupts/resolve", body);
    } catch (err) {
      this.error.textContent = /on_behalf/.test(err.message)
        ? "Not answered: this API key may not answer on someone's behalf (interrupts:on_behalf); clear “Answer as”."
        : `Not answered: ${err.message}`;
      return;
    } finally {
      for (const b of buttons) b.disabled = false;
    }
    this.show(outcome);
    this.comment.clear();
    this.selectAll(false);
    this.selected.clear();
    for (const r of outcome.results) {
      const now = r.interrupt;
      // a vote that decided nothing leaves the question open; an answer may be held to undo
      if (r.status === 200 && now?.status === "pending") this.inbox.voted(r.interrupt_id, now.approval);
      else if (r.status === 200) {
        const status = now?.status === "accepted" ? "accepted" : "resolved";
        this.inbox.closed(r.interrupt_id, { status, resolution: now?.resolution ?? null });
      } else if ([404, 409, 410].includes(r.status)) this.inbox.refused(r.interrupt_id);
    }
    this.update();
    await this.inbox.load().catch(() => {});
  }

  show(outcome) {
    const refused = outcome.results.filter((r) => r.status !== 200);
    const dismiss = h("button", { type: "button", class: "quiet" }, "Dismiss");
    dismiss.addEventListener("click", () => fill(this.results));
    fill(this.results,
      h("div", { class: refused.length ? "card outcome refused" : "card outcome" },
        h("p", { dataset: { summary: "" } },
          `${outcome.accepted} answered` + (refused.length ? `, ${outcome.refused} refused:` : ".")),
        refused.length
          ? h("ul", {}, refused.map((r) => h("li", { dataset: { interruptId: r.interrupt_id, status: String(r.status) } },
            `${this.label(r.interrupt_id)} — ${r.status} ${r.error?.code ?? ""}: ${r.error?.message ?? ""}`)))
          : null,
        h("div", { class: "actions" }, dismiss)));
  }

  label(id) {
    const record = this.inbox.items.get(id)?.record;
    if (!record) return id;
    const q = questionText(record.value);
    return q ? `${record.agent_id}: “${q}”` : `${record.agent_id} (${id.slice(0, 8)})`;
  }
}
