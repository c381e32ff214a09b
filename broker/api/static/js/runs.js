// The runs page: a form that starts a run of any registered agent, and the list of runs.

import { ApiError, get, post } from "./api.js";
import { fill, h, shortId, timeEl } from "./dom.js";

// A first message for each demo agent, so a newcomer can start one with a single click.
const EXAMPLES = {
  naming: "hi",
  scheduling: "Book a call with Alice about the Q3 roadmap",
  tool_approval: "Send an email to bob@example.com about the launch",
  parallel: "hi",
};

export class Runs {
  constructor(root) {
    this.root = root;
    this.form = root.querySelector("#start-form");
    this.tbody = root.querySelector("#runs-table tbody");
    this.emptyNote = root.querySelector("#runs-empty");
    this.status = root.querySelector("#runs-status");
    this.description = root.querySelector("#agent-description");
    this.agents = [];
    this.timer = null;
    this.visible = false;
    this.form.addEventListener("submit", (e) => this.start(e));
    this.form.elements.agent_id.addEventListener("change", () => this.pickAgent());
    this.status.addEventListener("change", () => this.refresh().catch(() => {}));
  }

  setAgents(agents) {
    this.agents = agents;
    const select = this.form.elements.agent_id;
    const chosen = select.value;
    fill(select, ...agents.map((a) => h("option", { value: a.agent_id }, a.agent_id)));
    if (chosen) select.value = chosen;
    this.pickAgent();
  }

  pickAgent() {
    const id = this.form.elements.agent_id.value;
    const message = this.form.elements.message;
    const example = EXAMPLES[id] ?? "";
    if (!message.value || Object.values(EXAMPLES).includes(message.value)) message.value = example;
    message.placeholder = example || "what to say to the agent";
    const agent = this.agents.find((a) => a.agent_id === id);
    this.description.textContent = agent?.description ?? "";
  }

  async start(event) {
    event.preventDefault();
    const f = this.form.elements;
    const error = this.form.querySelector("[data-error]");
    error.textContent = "";
    let input;
    if (f.input_json.value.trim()) {
      try {
        input = JSON.parse(f.input_json.value);
      } catch (err) {
        error.textContent = `The input is not valid JSON: ${err.message}`;
        return;
      }
    } else {
      input = { messages: [{ role: "user", content: f.message.value }] };
    }
    const body = { agent_id: f.agent_id.value, input };
    if (f.thread_id.value.trim()) body.thread_id = f.thread_id.value.trim();
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const run = await post("/runs", body);
      location.hash = `#/runs/${encodeURIComponent(run.run_id)}`;
    } catch (err) {
      error.textContent = err instanceof ApiError ? `Not started: ${err.message}` : String(err);
    } finally {
      button.disabled = false;
    }
  }

  show(visible) {
    this.visible = visible;
    if (visible) this.refresh().catch(() => {});
  }

  onEvent(event) {
    if (!this.visible || !event.type?.startsWith("run.")) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), 200);
  }

  async poll() {
    if (this.visible) await this.refresh();
  }

  async refresh() {
    const page = await get("/runs", { limit: 50, status: this.status.value });
    fill(this.tbody,
      ...page.items.map((run) =>
        h("tr", { dataset: { runId: run.run_id } },
          h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(run.run_id)}` }, h("code", {}, shortId(run.run_id)))),
          h("td", {}, run.agent_id),
          h("td", {}, statusBadge(run.status)),
          h("td", {}, timeEl(run.created_at)))),
    );
    this.emptyNote.hidden = page.items.length > 0;
  }
}

export function statusBadge(status) {
  return h("span", { class: "status", dataset: { status } }, status);
}
