// The inbox: every pending interrupt, kept current by live events (or polling), with
// filters, an order, counts per agent, a note for each one closed elsewhere (notices.js),
// the votes cast so far, "Assigned to me" for a signed-in person, and a selection
// answered at once (bulk.js). A card whose answer the broker holds for its undo window
// stays, counting down, until resolved or withdrawn, after a reload too (undo.js).

import { get, request, withQuery } from "./api.js";
import { Bulk } from "./bulk.js";
import { closeCard, interruptCard, people } from "./cards.js";
import { h } from "./dom.js";
import { readFilters, renderCounts, syncOptions } from "./filters.js";
import { notice } from "./notices.js";
import { forgetHeld, onCard, stillHeld } from "./undo.js";

const PAGE = 200;
const MAX_ITEMS = 2000;
const CLOSING = new Set(["interrupt.resolved", "interrupt.expired", "interrupt.cancelled", "interrupt.accepted"]);
const held = (entry) => Boolean(entry?.card.dataset.held);

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
    this.person = null; // who is signed in, or null with a key
    this.tab = "all"; // or "mine": the ones assigned to the person
    this.mine = null; // ids `GET /interrupts?assigned_to=me` listed
    this.tabs = root.querySelector("#inbox-tabs");
    this.mineCount = root.querySelector("#mine-count");
    this.bulk = new Bulk(root, this);
    for (const button of this.tabs.querySelectorAll("[data-tab]")) {
      button.addEventListener("click", () => this.showTab(button.dataset.tab));
    }
    this.filtersForm.addEventListener("input", () => this.render());
    this.filtersForm.addEventListener("submit", (e) => e.preventDefault());
  }

  setAgents(agents) {
    this.agents = agents;
    this.render();
  }

  // A person signed in gets "Assigned to me"; with a key there is no "me" to assign.
  setPerson(name) {
    this.person = name;
    this.tabs.hidden = !name;
    if (!name) {
      this.mine = null;
      this.showTab("all");
    } else this.loadMine().catch(() => {});
  }

  showTab(tab) {
    this.tab = tab;
    for (const b of this.tabs.querySelectorAll("[data-tab]")) b.setAttribute("aria-pressed", String(b.dataset.tab === tab));
    this.render();
  }

  // The pending interrupts whose assignees name this person (directly or by a group).
  async loadMine() {
    if (!this.person) return;
    const ids = new Set();
    let cursor = null;
    do {
      const page = await get("/interrupts", { assigned_to: "me", limit: PAGE, cursor });
      for (const record of page.items) {
        ids.add(record.id);
        this.add(record, false);
      }
      cursor = page.next_cursor;
    } while (cursor && ids.size < MAX_ITEMS);
    this.mine = ids;
    this.render();
  }

  laterMine() {
    if (!this.person) return;
    clearTimeout(this.mineTimer);
    this.mineTimer = setTimeout(() => this.loadMine().catch(() => {}), 150);
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
        records.push(...(await stillHeld()));
        this.replace(records);
        if (this.person) await this.loadMine().catch(() => {});
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
      if (!ids.has(id) && !entry.card.classList.contains("closed-card") && !held(entry)) {
        this.items.delete(id);
        entry.card.remove();
      }
    }
    for (const record of records) {
      if (!this.items.has(record.id)) this.add(record, false);
    }
  }

  add(record, render = true) {
    if (this.items.has(record.id) || !onCard(record)) return;
    const card = interruptCard(record, {
      onAnswered: (r, resolution) => this.closed(r.id, { status: "resolved", resolution }),
      onVoted: (r) => this.voted(r.id, r.approval),
      onHeld: () => this.render(),
      onReleased: () => this.render(),
      onRefused: (r) => this.refused(r.id),
      onRenewed: (r, renewed) => this.items.set(r.id, { record: r, card: renewed }),
      onPick: (r, on) => this.bulk.pick(r.id, on),
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
    if (event.type === "interrupt.created" || event.type === "interrupt.assigned") this.laterMine();
    if (event.type === "interrupt.assigned") {
      await this.reassigned(id);
      return;
    }
    if (event.type === "interrupt.voted") {
      this.voted(id, event.data.approval);
      return;
    }
    if (event.type === "interrupt.withdrawn") {
      await this.withdrawn(id);
      return;
    }
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
    if (!CLOSING.has(event.type)) return;
    const status = event.type.slice("interrupt.".length);
    this.closed(id, { status, resolution: event.data.resolution ?? null });
  }

  // A vote was cast: the card shows the votes so far (never fewer than it shows).
  voted(id, approval) {
    const entry = this.items.get(id);
    if (!entry || !approval) return;
    const shown = entry.card.record.approval?.votes?.length ?? 0;
    if ((approval.votes?.length ?? 0) < shown) return;
    entry.card.refresh({ ...entry.card.record, approval });
    entry.record = entry.card.record;
  }

  // An answer held for its undo window was withdrawn: the question is open again.
  async withdrawn(id) {
    this.gone.delete(id);
    const fresh = await get(`/interrupts/${encodeURIComponent(id)}`).catch(() => null);
    if (fresh?.status !== "pending") return;
    const entry = this.items.get(id);
    if (entry && !entry.card.classList.contains("closed-card")) {
      if (held(entry)) entry.card.release(fresh);
      else entry.card.refresh(fresh);
      entry.record = fresh;
      return;
    }
    // new here, or closed by a refusal (it was answered elsewhere): answerable again
    entry?.card.remove();
    this.items.delete(id);
    this.add(fresh);
  }

  // Who may answer changed: the card shows the new assignees and watchers.
  async reassigned(id) {
    const entry = this.items.get(id);
    if (!entry) return;
    try {
      entry.record = await get(`/interrupts/${encodeURIComponent(id)}`);
    } catch {
      return;
    }
    const line = people(entry.record);
    const old = entry.card.querySelector("[data-people]");
    if (old && line) old.replaceWith(line);
    else if (old) old.remove();
    else if (line) entry.card.querySelector("header").after(line);
    // a refusal for not being an assignee may no longer hold
    const error = entry.card.querySelector("[data-error]");
    if (error) error.textContent = "";
  }

  // One poll round without a socket: a cheap 304 when nothing changed.
  async poll() {
    const path = withQuery("/interrupts", { status: "pending", limit: 500 });
    if (this.person) await this.loadMine();
    const res = await request(path, { headers: this.etag ? { "if-none-match": this.etag } : {} });
    if (res.status === 304) return;
    this.etag = res.etag;
    const ids = new Set(res.data.items.map((r) => r.id));
    for (const record of res.data.items) {
      if (this.items.has(record.id)) this.voted(record.id, record.approval);
      else this.add(record);
    }
    const vanished = [...this.items.values()].filter( // held ones too: they leave once resolved
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

  // The interrupt closed (answered here or elsewhere, expired, or cancelled), or an
  // answer given elsewhere is held for its undo window ("accepted").
  closed(id, { status, resolution }) {
    const entry = this.items.get(id);
    if (status === "accepted" && held(entry)) return; // this page's own, counting down
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
    entry.card.querySelector("[data-held]")?.stop();
    forgetHeld(id);
    entry.card.remove();
    notice(this.notices, entry.record, status, resolution);
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

  render() {
    const f = readFilters(this.filtersForm);
    const entries = [...this.items.values()];
    const open = entries.filter((e) => !e.card.classList.contains("closed-card") && !held(e));
    const perAgent = new Map();
    for (const { record } of open) perAgent.set(record.agent_id, (perAgent.get(record.agent_id) ?? 0) + 1);

    this.badge.textContent = String(open.length);
    document.title = open.length ? `(${open.length}) Interrupt broker` : "Interrupt broker";
    syncOptions(this.filtersForm, "agent", [...new Set([...this.agents, ...perAgent.keys()])].sort(), f.agent);
    syncOptions(this.filtersForm, "type", [...new Set(entries.map((e) => e.record.type ?? "").filter(Boolean))].sort(), f.type);
    renderCounts(this.counts, perAgent, f.agent, (agent) => {
      const select = this.filtersForm.elements.agent;
      select.value = select.value === agent ? "" : agent;
      this.render();
    });

    const shown = entries
      .filter(({ record: r }) =>
        (!f.agent || r.agent_id === f.agent) &&
        (!f.type || r.type === f.type) &&
        (!f.thread || r.thread_id.includes(f.thread)) &&
        (this.tab !== "mine" || Boolean(this.mine?.has(r.id))))
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
    this.bulk.sync();
    const mine = open.filter((e) => this.mine?.has(e.record.id)).length;
    this.mineCount.textContent = this.mine ? String(mine) : "";

    this.empty.hidden = entries.length > 0 || this.tab === "mine";
    const filtered = shown.length !== entries.length;
    this.summary.textContent = entries.length === 0
      ? ""
      : `${filtered ? `Showing ${shown.length} of ${open.length}` : `${open.length}`} pending` +
        (entries.some(held) ? ` · ${entries.filter(held).length} answered, still to undo` : "") +
        (this.truncated ? ` (the first ${MAX_ITEMS} only)` : "") +
        (filtered && shown.length === 0
          ? this.tab === "mine" ? " — none assigned to you" : " — none match these filters"
          : "");
  }
}
