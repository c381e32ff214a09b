/**
 * `Client`: the broker's REST API, its run events (SSE), `WS /ws` and its AG-UI endpoint,
 * over the platform's fetch and WebSocket. Each route is described once (calls.js,
 * admin.js, links.js, agui.js); here is only the sending, the retrying and the reading.
 * Methods are grouped as the API is: `client.agents`, `client.runs`, `client.interrupts`,
 * `client.links`, `client.webhooks` (admin), `client.agui`, `client.follow()` for live
 * events across runs, and the open probes and documents (`health`, `ready`, `metrics`,
 * `authConfig`, `receiptKeys`).
 */

import * as admin from "./admin.js";
import { aguiEvents, aguiPath, runAgentInput } from "./agui.js";
import * as calls from "./calls.js";
import { fromResponse } from "./errors.js";
import { Follower } from "./follow.js";
import { useLink, linkFor, showLink } from "./links.js";
import { Retry, sleep, waitBeforeRetry } from "./retry.js";
import { runEvents, wsEvents } from "./streams.js";

/**
 * Every item of a paged list, page after page.
 * @param {(filters: Record<string, unknown>) => Promise<{items: any[], nextCursor: string | null}>} listPage
 * @param {Record<string, unknown>} filters
 */
async function* pages(listPage, filters) {
  let cursor = /** @type {string | null | undefined} */ (filters.cursor);
  for (;;) {
    const page = await listPage({ ...filters, cursor });
    yield* page.items;
    if (!page.nextCursor) return;
    cursor = page.nextCursor;
  }
}

export class Client {
  /**
   * @param {string} baseUrl where the client reaches the broker, e.g. `http://127.0.0.1:8000`
   * @param {import("./index.js").ClientOptions} [options]
   */
  constructor(baseUrl, options = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey ?? null;
    /** @type {Record<string, string>} */
    this.headers = { ...(options.headers ?? {}) };
    if (this.apiKey) this.headers.Authorization = `Bearer ${this.apiKey}`;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retry = options.retry instanceof Retry ? options.retry : new Retry(options.retry);
    this.reconnect = options.reconnect instanceof Retry ? options.reconnect : new Retry({ attempts: 30, ...options.reconnect });
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;

    const json = (/** @type {calls.Call} */ call) => this.json(call);
    this.agents = {
      /** The registered agents this key may use. */
      list: async () => (await json(calls.listAgents())).items,
    };
    this.runs = {
      /** Starts a run, with an `Idempotency-Key` (made here when not given). */
      start: (/** @type {string} */ agentId, /** @type {unknown} */ input, options = {}) =>
        json(calls.startRun(agentId, input, options)),
      get: (/** @type {string} */ runId) => json(calls.getRun(runId)),
      list: async (filters = {}) => calls.page(await json(calls.listRuns(filters))),
      iterate: (filters = {}) => pages(this.runs.list, filters),
      cancel: (/** @type {string} */ runId) => json(calls.cancelRun(runId)),
      events: (/** @type {string} */ runId, { lastEventId = null, signal = undefined } = {}) =>
        runEvents(
          (headers, s) => this.open(calls.runEventsPath(runId), headers, s),
          new Follower(lastEventId, this.reconnect),
          signal,
        ),
    };
    this.interrupts = {
      list: async (filters = {}) => calls.page(await json(calls.listInterrupts(filters))),
      iterate: (filters = {}) => pages(this.interrupts.list, filters),
      get: async (/** @type {string} */ id) => {
        const response = await this.send(calls.getInterrupt(id));
        if (response.status >= 400) throw await fromResponse(response);
        const etag = response.headers.get("etag");
        return { interrupt: await response.json(), etag, fingerprint: etag ? etag.replace(/^W\//, "").replace(/"/g, "") : null };
      },
      audit: async (/** @type {string} */ id) => (await json(calls.audit(id))).items,
      resolve: (/** @type {string} */ id, /** @type {unknown} */ value, options = {}) =>
        json(calls.resolve(id, value, options)),
      resolveMany: (/** @type {unknown} */ value, options = {}) => json(calls.resolveMany(value, options)),
      assign: (/** @type {string} */ id, /** @type {string[]} */ assignees, options = {}) =>
        json(calls.assign(id, assignees, options)),
      withdraw: (/** @type {string} */ id) => json(calls.withdraw(id)),
    };
    this.links = {
      use: async (/** @type {any} */ link, options = {}) => {
        const response = await this.send(useLink(link, options));
        if (!(response.headers.get("content-type") ?? "").startsWith("text/html")) throw await fromResponse(response);
        const status = response.status;
        return { status, ok: status === 200, page: await response.text() };
      },
      answer: (/** @type {any[]} */ links, /** @type {string} */ choice, { comment = undefined } = {}) =>
        this.links.use(linkFor(links, choice), { comment }),
      show: async (/** @type {any} */ link) => {
        const response = await this.send(showLink(link));
        if (!(response.headers.get("content-type") ?? "").startsWith("text/html")) throw await fromResponse(response);
        const status = response.status;
        return { status, ok: status === 200, page: await response.text() };
      },
    };
    this.webhooks = {
      create: (/** @type {string} */ url, options = {}) => json(admin.createWebhook(url, options)),
      list: async () => (await json(admin.listWebhooks())).items,
      get: (/** @type {string} */ id) => json(admin.getWebhook(id)),
      update: (/** @type {string} */ id, /** @type {Record<string, unknown>} */ changes) =>
        json(admin.updateWebhook(id, changes)),
      delete: async (/** @type {string} */ id) => {
        const response = await this.send(admin.deleteWebhook(id));
        if (response.status >= 400) throw await fromResponse(response);
        await response.body?.cancel();
      },
      deliveries: async (/** @type {string} */ id, { limit = undefined } = {}) =>
        (await json(admin.deliveries(id, limit))).items,
    };
    this.agui = {
      /** @param {string} agentId @param {Record<string, unknown>} input */
      run: (agentId, input, { signal = undefined } = {}) => {
        const body = JSON.stringify(runAgentInput(input));
        const url = this.url({ method: "POST", path: aguiPath(agentId) });
        const headers = { ...this.headers, "Content-Type": "application/json", Accept: "text/event-stream" };
        const send = this.fetch;
        return aguiEvents((s) => send(url, { method: "POST", headers, body, signal: s }), signal);
      },
    };
  }

  /** `GET /healthz`: the API process answers. */
  health() {
    return this.json(calls.read("/healthz"));
  }

  /**
   * `GET /readyz`: whether Redis answers and a worker is alive. Not ready (its 503) is an
   * answer, returned with `status: "not_ready"` and the checks; only a 503 of another
   * shape (an `{"error": ...}` body) throws `Unavailable`. Not sent again after a 503.
   */
  async ready() {
    const response = await this.send(calls.ready);
    if (response.status === 503) {
      const text = await response.text();
      /** @type {any} */
      let body = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
      if (body && typeof body === "object" && "checks" in body) return body;
      const { statusText, headers } = response;
      throw await fromResponse(new Response(text, { status: 503, statusText, headers }));
    }
    if (response.status >= 400) throw await fromResponse(response);
    return response.json();
  }

  /** `GET /metrics`: the Prometheus text (a key that reads, limited to no agents). */
  async metrics() {
    const response = await this.send(calls.read("/metrics"));
    if (response.status >= 400) throw await fromResponse(response);
    return response.text();
  }

  /** `GET /auth/config`: the OpenID provider people sign in with, if any. */
  authConfig() {
    return this.json(calls.read("/auth/config"));
  }

  /** `GET /.well-known/jwks.json`: the public keys decision receipts verify against. */
  receiptKeys() {
    return this.json(calls.read("/.well-known/jwks.json"));
  }

  /**
   * Live run and interrupt events across runs (`WS /ws`), filtered; from now on, or
   * after the event id `after` (`"0"`: from the start of the retained log). Never ends by
   * itself: a dropped connection is followed by a reconnect from the last event seen.
   * @param {import("./index.js").FollowOptions} [options]
   */
  follow({ after = null, signal = undefined, ...filters } = {}) {
    const WebSocketClass = this.WebSocket;
    if (typeof WebSocketClass !== "function") {
      throw new TypeError(
        "no WebSocket here: pass the WebSocket option (Node 21+ has a global one; Node 20 with --experimental-websocket)",
      );
    }
    const params = calls.fields(filters);
    const url = (/** @type {string | null} */ last) => this.wsUrl(params, last);
    return wsEvents(url, WebSocketClass, new Follower(after, this.reconnect), signal);
  }

  /**
   * `ws(s)://<host>/<base path>/ws?<filters>&after=<id>`; the API key goes as
   * `?api_key=` since a browser's WebSocket cannot send headers.
   * @param {Record<string, unknown>} params
   * @param {string | null} after
   */
  wsUrl(params, after) {
    const url = new URL(this.baseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws`;
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
    if (after) url.searchParams.set("after", after);
    if (this.apiKey) url.searchParams.set("api_key", this.apiKey);
    return url.toString();
  }

  /** @param {calls.Call} call */
  url(call) {
    const url = new URL(this.baseUrl + call.path);
    for (const [k, v] of Object.entries(call.params ?? {})) url.searchParams.set(k, String(v));
    return url;
  }

  /**
   * Sends a call, again after a connection error or a 503 where that is safe; the last
   * response (an error one included), or the last connection error thrown.
   * @param {calls.Call} call
   * @returns {Promise<Response>}
   */
  async send(call) {
    const send = this.fetch;
    /** @type {Record<string, string>} */
    const headers = { ...this.headers, ...(call.headers ?? {}) };
    /** @type {BodyInit | undefined} */
    let body;
    if (call.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(call.json);
    } else if (call.form) body = new URLSearchParams(call.form);
    let failures = 0;
    for (;;) {
      /** @type {Response} */
      let response;
      try {
        const signal = AbortSignal.timeout(this.timeoutMs);
        response = await send(this.url(call), { method: call.method, headers, body, signal });
      } catch (error) {
        failures += 1;
        const wait = waitBeforeRetry(this.retry, failures, Boolean(call.retry), { error });
        if (wait === null) throw error;
        await sleep(wait);
        continue;
      }
      if (response.status < 400) return response;
      failures += 1;
      const wait = waitBeforeRetry(this.retry, failures, Boolean(call.retry), { response });
      if (wait === null) return response;
      await response.body?.cancel();
      await sleep(wait);
    }
  }

  /** @param {calls.Call} call */
  async json(call) {
    const response = await this.send(call);
    if (response.status >= 400) throw await fromResponse(response);
    return response.json();
  }

  /**
   * A streaming GET (no overall timeout: the follower watches for silence).
   * @param {string} path
   * @param {Record<string, string>} headers
   * @param {AbortSignal} signal
   */
  open(path, headers, signal) {
    const send = this.fetch;
    const url = this.url({ method: "GET", path });
    return send(url, { headers: { ...this.headers, Accept: "text/event-stream", ...headers }, signal });
  }
}
