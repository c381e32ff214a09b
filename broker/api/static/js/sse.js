// A run's events over SSE (`GET /runs/{id}/events`), read with fetch so the API key goes
// in a header; reconnects with Last-Event-ID until the run's last event.

import { ApiError, authHeaders, get, needKey } from "./api.js";

const TERMINAL = new Set(["run.succeeded", "run.failed", "run.cancelled"]);
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

export async function followRun(runId, onEvent, signal) {
  const path = `/runs/${encodeURIComponent(runId)}/events`;
  let last = null;
  while (!signal.aborted) {
    const headers = { accept: "text/event-stream", ...authHeaders() };
    if (last) headers["last-event-id"] = last;
    let res;
    try {
      res = await fetch(path, { headers, signal, cache: "no-store" });
    } catch {
      if (signal.aborted) return;
      await pause(2000, signal);
      continue;
    }
    if (res.status === 401) {
      if (await needKey()) continue;
      return;
    }
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    let ended = false;
    try {
      for await (const event of frames(res.body)) {
        last = event.id ?? last;
        onEvent(event);
        if (TERMINAL.has(event.type)) ended = true;
      }
    } catch {
      if (signal.aborted) return;
    }
    if (ended) return;
    // the stream closed early: a finished run has nothing more to send
    const run = await get(`/runs/${encodeURIComponent(runId)}`).catch(() => null);
    if (!run || FINISHED.has(run.status)) return;
    await pause(1000, signal);
  }
}

async function* frames(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue; // a keep-alive comment
      try {
        yield JSON.parse(data);
      } catch {
        // not an event of ours
      }
    }
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
