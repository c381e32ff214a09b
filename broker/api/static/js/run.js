// One run: its facts, output and error, its interrupts with their answers and votes
// (pending ones answerable here), and its event timeline, live while the run goes on.

import { get, post } from "./api.js";
import { answerText, commentLine, interruptCard, people, who } from "./cards.js";
import { fill, h, json, questionText, shortId, time, timeEl } from "./dom.js";
import { followRun } from "./sse.js";
import { forgetHeld, onCard } from "./undo.js";
import { statusBadge } from "./runs.js";
import { approvalSummary, voterName, votesBox } from "./votes.js";

const ACTIVE = new Set(["queued", "running", "interrupted"]);

export class RunDetail {
  constructor(root, runId) {
    this.root = root;
    this.runId = runId;
    this.abort = new AbortController();
    this.interruptIds = new Set();
    this.cards = new Map(); // pending interrupt id -> card, kept while it stays pending
    this.deltas = new Map(); // message id -> timeline row being streamed
    this.timers = {};
    this.facts = h("div", { class: "card", id: "run-facts" });
    this.outcome = h("div", { id: "run-outcome" });
    this.pending = h("ol", { class: "cards", id: "run-pending", "aria-label": "Waiting for an answer" });
    this.answered = h("ol", { class: "cards", id: "run-interrupts", "aria-label": "Interrupts and answers" });
    this.timeline = h("ol", { class: "timeline", id: "run-timeline", "aria-live": "polite" });
    this.streamNote = h("p", { class: "muted", id: "run-stream" }, "Following the run's events…");
    fill(root,
      h("div", { class: "section-head" },
        h("h2", { id: "run-title" }, "Run ", h("code", {}, shortId(runId))),
        h("a", { href: "#/runs" }, "All runs")),
      this.facts,
      this.outcome,
      h("h2", { class: "section-head" }, "Waiting for an answer"),
      this.pending,
      h("h2", { class: "section-head" }, "Interrupts and answers"),
      this.answered,
      h("h2", { class: "section-head" }, "Events"),
      this.streamNote,
      h("div", { class: "card" }, this.timeline),
    );
  }

  async start() {
    await this.refreshRun();
    followRun(this.runId, (e) => this.onEvent(e), this.abort.signal)
      .then(() => {
        if (!this.abort.signal.aborted) this.streamNote.textContent = "The run has finished; these are all its events.";
      })
      .catch((err) => {
        this.streamNote.textContent = `Could not follow the events: ${err.message}`;
      });
  }

  stop() {
    this.abort.abort();
    for (const t of Object.values(this.timers)) clearTimeout(t);
  }

  later(name, fn) {
    clearTimeout(this.timers[name]);
    this.timers[name] = setTimeout(() => Promise.resolve(fn()).catch(() => {}), 150);
  }

  onEvent(event) {
    this.addToTimeline(event);
    if (event.type.startsWith("run.")) this.later("run", () => this.refreshRun());
    if (event.type === "interrupt.withdrawn") this.withdrawn(event.data?.interrupt_id).catch(() => {});
    if (event.type.startsWith("interrupt.")) {
      if (event.data?.interrupt_id) this.interruptIds.add(event.data.interrupt_id);
      this.later("interrupts", () => this.refreshInterrupts());
    }
  }

  async refreshRun() {
    let run;
    try {
      run = await get(`/runs/${encodeURIComponent(this.runId)}`);
    } catch (err) {
      fill(this.facts, h("p", { class: "error" }, `This run could not be read: ${err.message}`));
      return;
    }
    this.run = run;
    for (const id of run.pending_interrupts) this.interruptIds.add(id);
    const cancel = ACTIVE.has(run.status)
      ? h("button", { type: "button", class: "danger", onclick: () => this.cancel() }, "Cancel run")
      : null;
    fill(this.facts,
      h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", {}, statusBadge(run.status)),
        h("dt", {}, "Agent"), h("dd", {}, run.agent_id),
        h("dt", {}, "Thread"), h("dd", {}, h("code", {}, run.thread_id)),
        h("dt", {}, "Run id"), h("dd", {}, h("code", {}, run.run_id)),
        h("dt", {}, "Started"), h("dd", {}, timeEl(run.created_at)),
        h("dt", {}, "Updated"), h("dd", {}, timeEl(run.updated_at)),
        h("dt", {}, "Attempts"), h("dd", {}, String(run.attempts))),
      h("details", {}, h("summary", {}, "Input"), h("pre", {}, json(run.input))),
      cancel ? h("div", { class: "actions" }, cancel) : null,
      h("p", { class: "error", role: "alert", dataset: { error: "" } }),
    );
    const parts = [];
    const final = run.output?.final_message;
    if (final) parts.push(h("p", { class: "final", id: "run-final" }, final));
    if (run.error) {
      const text = typeof run.error === "string" ? run.error : run.error.message ?? json(run.error);
      parts.push(h("p", { class: "error", id: "run-error" }, `Failed: ${text}`));
    }
    if (run.output) parts.push(h("details", {}, h("summary", {}, "Output"), h("pre", {}, json(run.output))));
    fill(this.outcome, ...(parts.length ? [h("div", { class: "card" }, parts)] : []));
    await this.refreshInterrupts();
  }

  async refreshInterrupts() {
    const records = await Promise.all(
      [...this.interruptIds].map((id) => get(`/interrupts/${encodeURIComponent(id)}`).catch(() => null)),
    );
    const known = records.filter(Boolean).sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    // (and those answered from this tab before a reload, still held: undo.js)
    for (const record of known.filter(onCard)) {
      const shown = this.cards.get(record.id);
      if (shown && !shown.dataset.held) shown.refresh(record); // the votes so far
      if (shown) continue;
      const card = interruptCard(record, {
        onAnswered: () => this.later("run", () => this.refreshRun()),
        onRefused: () => this.later("run", () => this.refreshRun()),
        onRenewed: (r, next) => this.cards.set(r.id, next),
      });
      this.cards.set(record.id, card);
      this.pending.append(card);
    }
    for (const [id, card] of this.cards) {
      const record = known.find((r) => r.id === id);
      // an answer held here for its undo window keeps its card, with Undo, until resolved
      const keep = card.inflight || card.classList.contains("closed-card") || (card.dataset.held && record?.status === "accepted");
      if (record && record.status !== "pending" && !keep) {
        card.querySelector("[data-held]")?.stop();
        forgetHeld(id);
        card.remove();
        this.cards.delete(id);
      }
    }
    if (!this.pending.children.length) fill(this.pending, h("li", { class: "muted" }, "Nothing."));
    else this.pending.querySelector("li.muted")?.remove();
    fill(this.answered,
      ...known.filter((r) => r.status !== "pending" && !this.cards.has(r.id)).map((r) => closedItem(r)),
    );
    if (!this.answered.children.length) this.answered.append(h("li", { class: "muted" }, "None yet."));
  }

  // An answer held for its undo window was withdrawn (here or elsewhere): its card, if
  // this page holds it, shows the question again.
  async withdrawn(id) {
    const card = this.cards.get(id);
    if (!card?.dataset.held) return;
    const fresh = await get(`/interrupts/${encodeURIComponent(id)}`);
    if (fresh.status === "pending") card.release(fresh);
  }

  async cancel() {
    const error = this.facts.querySelector("[data-error]");
    try {
      await post(`/runs/${encodeURIComponent(this.runId)}/cancel`);
    } catch (err) {
      error.textContent = `Not cancelled: ${err.message}`;
    }
    await this.refreshRun();
  }

  addToTimeline(event) {
    if (event.type === "message.delta" || event.type === "tool_call.delta") {
      const mid = event.data?.message_id ?? "";
      let row = this.deltas.get(mid);
      if (!row) {
        row = timelineRow(event, "");
        row.text = "";
        this.deltas.set(mid, row);
        this.timeline.append(row);
      }
      row.text += event.data?.delta ?? event.data?.args_delta ?? "";
      row.querySelector(".what").textContent = `assistant (streaming): ${row.text}`;
      return;
    }
    const text = describe(event);
    const mid = event.data?.message?.id;
    const streamed = mid && this.deltas.get(mid);
    if (streamed) {
      streamed.replaceWith(timelineRow(event, text));
      this.deltas.delete(mid);
      return;
    }
    this.timeline.append(timelineRow(event, text));
  }
}

function timelineRow(event, text) {
  const iso = event.ts ? new Date(event.ts).toISOString() : null;
  return h("li", { dataset: { type: event.type, eventId: event.id ?? "" } },
    timeEl(iso), h("span", { class: "what" }, h("strong", {}, event.type), text ? ` — ${text}` : ""));
}

function closedItem(r) {
  const q = questionText(r.value);
  let outcome;
  if (r.status === "resolved") outcome = `${answerText(r.resolution?.value)} — answered by ${who(r.resolution)}`;
  else if (r.status === "accepted") {
    const until = r.undo?.held_until ? ` at ${time(r.undo.held_until)}` : "";
    outcome = `${answerText(r.resolution?.value)} — answered by ${who(r.resolution)}; it resumes once its undo window closes${until}`;
  } else if (r.status === "expired") outcome = r.resolution ? `expired; default answer ${answerText(r.resolution.value)}` : "expired";
  else outcome = "cancelled: the run ended";
  return h("li", { class: "card", dataset: { interruptId: r.id, status: r.status } },
    h("header", {}, h("h3", {}, q || r.type || "interrupt"), h("span", { class: "kind" }, r.type ?? "")),
    h("p", {}, outcome),
    r.status === "resolved" || r.status === "accepted" ? commentLine(r.resolution) : null,
    votesBox(r.approval),
    people(r),
    r.resolution?.resolved_at ? h("p", { class: "muted" }, "at ", timeEl(r.resolution.resolved_at)) : null);
}

function describe(event) {
  const d = event.data ?? {};
  switch (event.type) {
    case "interrupt.created":
      return `asks (${d.type ?? "interrupt"})`;
    case "interrupt.resolved":
      return `${answerText(d.resolution?.value)} by ${who(d.resolution)}`;
    case "interrupt.voted":
      return `${voterName(d.vote)} ${d.vote?.vote ? "approved" : "rejected"}${d.approval ? ` (${approvalSummary(d.approval)})` : ""}`;
    case "interrupt.accepted":
      return `${answerText(d.resolution?.value)} by ${who(d.resolution)}, held to undo until ${time(d.held_until)}`;
    case "interrupt.withdrawn":
      return "the answer was withdrawn; waiting for an answer again";
    case "run.failed":
      return typeof d.error === "string" ? d.error : d.error?.message ?? "";
    case "run.interrupted":
      return "waiting for an answer";
    case "message.completed": {
      const m = d.message ?? {};
      const calls = (m.tool_calls ?? []).map((c) => `${c.name}(${JSON.stringify(c.args)})`).join(", ");
      const content = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
      return `${m.name && m.type === "tool" ? `tool ${m.name}` : m.type}: ${content}${calls ? ` calls ${calls}` : ""}`;
    }
    default:
      return "";
  }
}
