// The inbox: every pending interrupt, kept current by live events (or polling), with
// filters, an order, counts per agent, and a note for each one closed elsewhere.

import { get, request, withQuery } from "./api.js";
import { answerText, closeCard, interruptCard, who } from "./cards.js";
import { clear, fill, h, questionText } from "./dom.js";

const PAGE = 200;
const MAX_ITEMS = 2000;
const MAX_NOTICES = 6;

export class Inbox {
  constructor(root) {
    this.root = root;
    this.list = root.querySelector("#inbox-list");
    this.filtersForm = root.querySelector("#inbox-filters");
    this.counts = root.querySelector("#agent-counts");
    this.notices = root.querySelector("#closed-notices");
    this.summary = root.querySelector("#inbox-summary");
    this.empty = root.querySelector("#inbox-empty");
    this.badge = document.querySelector("#inbox-count");
    this.items = new Map(); // id -> {record, card}
    this.gone = new Set(); // ids known to be closed
    this.agents = [];
    this.loading = null;
    this.buffer = [];
    this.etag = null;
    this.truncated = false;
    this.filtersForm.addEventListener("input", () => this.render());
    this.filtersForm.addEventListener("submit", (e) => e.preventDefault());
  }

  filters() {
    const f = new FormData(this.filtersForm);
    return {
      agent: f.get("agent") || "",
      type: f.get("type") || "",
      thread: String(f.get("thread") || "").trim(),
      order: f.get("order") || "asc",
    };
  }

  setAgents(agents) {
    this.agents = agents;
    this.render();
  }

  // Reloads every pending interrupt; events that arrive meanwhile are applied after.
  async load() {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      try {
        const records = [];
        let cursor = null;
        do {
          const page = await get("/interrupts", { status: "pending", limit: PAGE, cursor });
          records.push(...page.items);
          cursor = page.next_cursor;
        } while (cursor && records.length < MAX_ITEMS);
        this.truncated = Boolean(cursor);
        this.replace(records);
      } finally {
        this.loading = null;
        const buffered = this.buffer.splice(0);
        for (const event of buffered) await this.onEvent(event);
        this.render();
      }
    })();
    return this.loading;
  }

  replace(records) {
    const ids = new Set(records.map((r) => r.id));
    for (const [id, entry] of this.items) {
      if (!ids.has(id) && !entry.card.classList.contains("closed-card")) {
        this.items.delete(id);
        entry.card.remove();
      }
    }
    for (const record of records) {
      if (!this.items.has(record.id)) this.add(record, false);
    }
  }

  add(record, render = true) {
    if (this.items.has(record.id) || record.status !== "pending") return;
    const card = interruptCard(record, {
      onAnswered: (r, resolution) => this.closed(r.id, { status: "resolved", resolution }),
      onRefused: (r) => this.refused(r.id),
    });
    this.items.set(record.id, { record, card });
    if (render) this.render();
  }

  async onEvent(event) {
    if (!event.type?.startsWith("interrupt.")) return;
    if (this.loading) {
      this.buffer.push(event);
      return;
    }
    const id = event.data?.interrupt_id;
    if (!id) return;
    if (event.type === "interrupt.created") {
      if (this.items.has(id) || this.gone.has(id)) return;
      try {
        const record = await get(`/interrupts/${encodeURIComponent(id)}`);
        // it may have closed while it was being read
        if (!this.gone.has(id)) this.add(record);
      } catch {
        // gone already, or not visible to this key
      }
      return;
    }
    const status = event.type.slice("interrupt.".length);
    this.closed(id, { status, resolution: event.data.resolution ?? null });
  }

  // One poll round without a socket: a cheap 304 when nothing changed.
  async poll() {
    const path = withQuery("/interrupts", { status: "pending", limit: 500 });
    const res = await request(path, { headers: this.etag ? { "if-none-match": this.etag } : {} });
    if (res.status === 304) return;
    this.etag = res.etag;
    const ids = new Set(res.data.items.map((r) => r.id));
    for (const record of res.data.items) this.add(record);
    const vanished = [...this.items.values()].filter(
      (e) => !ids.has(e.record.id) && !e.card.classList.contains("closed-card"),
    );
    for (const { record } of vanished) {
      let now = { status: "resolved", resolution: null };
      try {
        now = await get(`/interrupts/${encodeURIComponent(record.id)}`);
      } catch {
        now = { status: "cancelled", resolution: null };
      }
      if (now.status !== "pending") this.closed(record.id, now);
    }
  }

  // The interrupt closed (answered here or elsewhere, expired, or cancelled).
  closed(id, { status, resolution }) {
    const entry = this.items.get(id);
    this.gone.add(id);
    if (!entry || entry.card.classList.contains("closed-card")) return;
    if (entry.card.inflight) {
      // this page's own answer is in flight: its outcome decides what the card shows
      entry.card.addEventListener("settled", () => this.closed(id, { status, resolution }), { once: true });
      return;
    }
    const next = entry.card.contains(document.activeElement)
      ? entry.card.nextElementSibling ?? entry.card.previousElementSibling
      : undefined;
    this.items.delete(id);
    entry.card.remove();
    this.notice(entry.record, status, resolution);
    this.render();
    // a keyboard user answering down the list goes on at the next question
    if (next !== undefined) {
      const target = next?.querySelector("button, textarea, input") ?? document.querySelector("#inbox-title");
      target.focus();
    }
  }

  refused(id) {
    const entry = this.items.get(id);
    this.gone.add(id);
    if (!entry) return;
    closeCard(entry.card);
    const dismiss = h("button", { type: "button", class: "quiet" }, "Dismiss");
    dismiss.addEventListener("click", () => {
      this.items.delete(id);
      entry.card.remove();
      this.render();
      this.filtersForm.querySelector("select")?.focus();
    });
    entry.card.append(h("div", { class: "actions" }, dismiss));
    this.render();
  }

  notice(record, status, resolution) {
    const q = questionText(record.value);
    const what = q ? `${record.agent_id}: “${q}”` : `${record.agent_id} (${record.type ?? "interrupt"})`;
    let outcome;
    if (status === "resolved") outcome = `${answerText(resolution?.value)} — answered by ${who(resolution)}`;
    else if (status === "expired") outcome = "expired without an answer";
    else outcome = "closed: its run ended";
    const dismiss = h("button", { type: "button", class: "quiet", "aria-label": "Dismiss" }, "×");
    const item = h("li", { dataset: { interruptId: record.id, status } }, h("span", {}, `${what} · ${outcome}`), dismiss);
    dismiss.addEventListener("click", () => item.remove());
    this.notices.prepend(item);
    while (this.notices.children.length > MAX_NOTICES) this.notices.lastElementChild.remove();
  }

  render() {
    const f = this.filters();
    const entries = [...this.items.values()];
    const open = entries.filter((e) => !e.card.classList.contains("closed-card"));
    const perAgent = new Map();
    for (const { record } of open) perAgent.set(record.agent_id, (perAgent.get(record.agent_id) ?? 0) + 1);

    this.badge.textContent = String(open.length);
    document.title = open.length ? `(${open.length}) Interrupt broker` : "Interrupt broker";
    this.syncOptions("agent", [...new Set([...this.agents, ...perAgent.keys()])].sort(), f.agent);
    this.syncOptions("type", [...new Set(entries.map((e) => e.record.type ?? "").filter(Boolean))].sort(), f.type);
    this.renderCounts(perAgent, f.agent);

    const shown = entries
      .filter(({ record: r }) =>
        (!f.agent || r.agent_id === f.agent) &&
        (!f.type || r.type === f.type) &&
        (!f.thread || r.thread_id.includes(f.thread)))
      .sort((a, b) => {
        const d = String(a.record.created_at).localeCompare(String(b.record.created_at));
        return f.order === "desc" ? -d : d;
      })
      .map((e) => e.card);
    // move only cards out of place, so a form being typed in keeps its focus
    shown.forEach((card, i) => {
      if (this.list.children[i] !== card) this.list.insertBefore(card, this.list.children[i] ?? null);
    });
    while (this.list.children.length > shown.length) this.list.lastElementChild.remove();

    this.empty.hidden = entries.length > 0;
    const filtered = shown.length !== entries.length;
    this.summary.textContent = entries.length === 0
      ? ""
      : `${filtered ? `Showing ${shown.length} of ${open.length}` : `${open.length}`} pending` +
        (this.truncated ? ` (the first ${MAX_ITEMS} only)` : "") +
        (filtered && shown.length === 0 ? " — none match these filters" : "");
  }

  syncOptions(name, values, selected) {
    const select = this.filtersForm.elements[name];
    const have = [...select.options].slice(1).map((o) => o.value);
    const want = selected && !values.includes(selected) ? [...values, selected] : values;
    if (have.join("\n") === want.join("\n")) return;
    fill(select, h("option", { value: "" }, "all"), ...want.map((v) => h("option", { value: v }, v)));
    select.value = selected;
  }

  renderCounts(perAgent, selected) {
    const focused = this.counts.contains(document.activeElement) ? document.activeElement.dataset.agent : null;
    clear(this.counts);
    for (const [agent, n] of [...perAgent].sort()) {
      const chip = h("button", { type: "button", "aria-pressed": String(agent === selected), dataset: { agent } }, `${agent} ${n}`);
      chip.addEventListener("click", () => {
        const select = this.filtersForm.elements.agent;
        select.value = select.value === agent ? "" : agent;
        this.render();
      });
      this.counts.append(h("li", {}, chip));
      if (agent === focused) chip.focus();
    }
  }
}
