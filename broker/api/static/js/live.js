// The live connection: `WS /ws` for run and interrupt events, resumed from the last event
// id after a drop, and polling (with an ETag) while the WebSocket cannot be used.

import { credential, needKey } from "./api.js";

const POLL_MS = 3000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;
// after this many failed attempts in a row, poll until the socket comes back
const FAILS_BEFORE_POLLING = 2;

export class Live {
  // onEvent(event), onResync() (reload everything: the cursor is unknown or events were
  // trimmed), onPoll() (one poll round), onState("connecting"|"live"|"polling"|"offline")
  constructor({ onEvent, onResync, onPoll, onState }) {
    Object.assign(this, { onEvent, onResync, onPoll, onState });
    this.lastId = null;
    this.fails = 0;
    this.retryMs = RETRY_MIN_MS;
    this.ws = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.state = null;
  }

  start() {
    this.connect();
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ events: "run,interrupt" });
    if (this.lastId) query.set("after", this.lastId);
    const secret = credential();
    if (secret) query.set("api_key", secret);
    return `${scheme}://${location.host}/ws?${query}`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.state !== "polling") this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.dropped(false);
      return;
    }
    this.ws = ws;
    let opened = false;
    let refused = null;
    ws.onmessage = async (msg) => {
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (frame.type === "live") {
        opened = true;
        this.fails = 0;
        this.retryMs = RETRY_MIN_MS;
        this.stopPolling();
        this.setState("live");
        // without a known position nothing was replayed: the page reloads its lists
        if (!this.lastId) this.onResync();
        if (frame.id && frame.id !== "0-0") this.lastId = frame.id;
        return;
      }
      if (frame.type === "gap") {
        this.onResync();
        return;
      }
      if (frame.type === "error") {
        refused = frame;
        if (frame.code === "slow_consumer" && frame.resume_from) this.lastId = frame.resume_from;
        return;
      }
      if (frame.id) this.lastId = frame.id;
      this.onEvent(frame);
    };
    ws.onclose = async () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (refused?.code === "unauthorized") {
        this.setState("offline");
        if (await needKey(refused.message)) this.connect();
        return;
      }
      if (refused?.code === "slow_consumer") {
        this.connect();
        return;
      }
      this.dropped(opened);
    };
  }

  dropped(wasOpen) {
    // a socket that was live reconnects at once, resuming after the last event it saw
    if (wasOpen) {
      this.retryTimer = setTimeout(() => this.connect(), 250);
      return;
    }
    this.fails += 1;
    if (this.fails >= FAILS_BEFORE_POLLING) this.startPolling();
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  startPolling() {
    this.setState("polling");
    if (this.pollTimer) return;
    const tick = async () => {
      try {
        await this.onPoll();
        if (this.state === "offline") this.setState("polling");
      } catch {
        this.setState("offline");
      }
      if (this.pollTimer) this.pollTimer = setTimeout(tick, POLL_MS);
    };
    this.pollTimer = setTimeout(tick, 0);
  }

  stopPolling() {
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }
}
