// Starts the dashboard: the API key dialog, the live connection, and hash routing between
// the inbox (#/inbox), the runs (#/runs) and one run (#/runs/<id>).

import { apiKey, get, onKeyNeeded, setApiKey } from "./api.js";
import { answerer, setAnswerer } from "./cards.js";
import { Inbox } from "./inbox.js";
import { Live } from "./live.js";
import { RunDetail } from "./run.js";
import { Runs } from "./runs.js";

const $ = (sel) => document.querySelector(sel);
const LIVE_WORDS = {
  connecting: "Connecting…",
  live: "Live",
  polling: "Polling (live updates unavailable)",
  offline: "Offline",
};

const inbox = new Inbox($("#view-inbox"));
const runs = new Runs($("#view-runs"));
let detail = null;

function setupKeyDialog() {
  const dialog = $("#key-dialog");
  const form = $("#key-form");
  const error = form.querySelector("[data-error]");
  const button = $("#key-button");
  let settle = null;
  button.hidden = !apiKey();

  onKeyNeeded((message) => {
    error.textContent = apiKey() ? message || "This API key is not valid." : "";
    form.elements.key.value = "";
    if (!dialog.open) dialog.showModal();
    form.elements.key.focus();
    return new Promise((resolve) => {
      settle = resolve;
    });
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = form.elements.key.value.trim();
    if (!key) return;
    setApiKey(key);
    button.hidden = false;
    dialog.close();
    settle?.(true);
    settle = null;
  });
  dialog.addEventListener("cancel", (event) => {
    // without a key nothing works; keep asking rather than show an empty page
    if (settle) event.preventDefault();
  });
  $("#key-forget").addEventListener("click", () => {
    setApiKey(null);
    button.hidden = true;
    error.textContent = "The key was forgotten. Enter a key to go on.";
    form.elements.key.value = "";
  });
  button.addEventListener("click", () => {
    error.textContent = "";
    dialog.showModal();
  });
}

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

function main() {
  setupKeyDialog();
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
