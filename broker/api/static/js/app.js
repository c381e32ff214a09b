// Starts the dashboard: sign-in or the API key dialog, the live connection, and hash
// routing between the inbox (#/inbox), the runs (#/runs) and one run (#/runs/<id>).

import { get } from "./api.js";
import { answerer, setAnswerer } from "./cards.js";
import { Inbox } from "./inbox.js";
import { Live } from "./live.js";
import { RunDetail } from "./run.js";
import { Runs } from "./runs.js";
import { Session } from "./session.js";

const $ = (sel) => document.querySelector(sel);
const LIVE_WORDS = {
  connecting: "Connecting…",
  live: "Live",
  polling: "Polling (live updates unavailable)",
  offline: "Offline",
};

const session = new Session();
const inbox = new Inbox($("#view-inbox"));
const runs = new Runs($("#view-runs"));
let detail = null;

function setupAnswerer() {
  const input = $("#answerer");
  input.value = answerer();
  input.addEventListener("change", () => setAnswerer(input.value));
}

function route() {
  const path = location.hash.replace(/^#\/?/, "") || "inbox";
  const [section, id] = path.split("/");
  const view = section === "runs" && id ? "run" : section === "runs" ? "runs" : "inbox";
  for (const name of ["inbox", "runs", "run"]) $(`#view-${name}`).hidden = name !== view;
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = link.dataset.nav === (view === "run" ? "runs" : view);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  detail?.stop();
  detail = null;
  runs.show(view === "runs");
  if (view === "run") {
    detail = new RunDetail($("#view-run"), decodeURIComponent(id));
    detail.start();
  }
}

async function loadAgents() {
  const { items } = await get("/agents");
  runs.setAgents(items);
  inbox.setAgents(items.map((a) => a.agent_id));
}

async function main() {
  await session.start();
  session.onChange((person) => inbox.setPerson(person));
  inbox.setPerson(session.person);
  setupAnswerer();
  const state = $("#live");
  const live = new Live({
    onEvent: (event) => {
      inbox.onEvent(event);
      runs.onEvent(event);
    },
    onResync: () => {
      inbox.load().catch(() => {});
      if (!runs.visible) return;
      runs.refresh().catch(() => {});
    },
    onPoll: async () => {
      await inbox.poll();
      await runs.poll();
    },
    onState: (s) => {
      state.dataset.state = s;
      state.textContent = LIVE_WORDS[s];
    },
  });
  window.addEventListener("hashchange", () => {
    route();
    $("#main").focus();
  });
  route();
  loadAgents()
    .then(() => live.start())
    .catch(() => live.start());
}

main();
