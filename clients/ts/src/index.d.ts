/**
 * A typed client of the interrupt broker: runs, interrupts, live events (SSE and
 * WebSocket), webhook subscriptions and verification, action links, AG-UI, and the
 * broker's probes and public documents. Records are the JSON as the
 * broker sends it (snake_case fields, nothing converted or dropped); options are
 * camelCase.
 */

import type {
  ActionLink,
  Agent,
  AguiEvent,
  AuditEntry,
  AuthConfig,
  BulkOutcome,
  Delivery,
  Event,
  Fetched,
  Interrupt,
  InterruptStatus,
  JwkSet,
  LinkAnswer,
  NewWebhook,
  Page,
  Readiness,
  Resolution,
  Run,
  RunAgentInput,
  RunStarted,
  RunStatus,
  Webhook,
  WebhookEvent,
} from "./models.js";

export type * from "./models.js";

/** The events that end a run's event stream. */
export declare const TERMINAL_EVENTS: ReadonlySet<string>;

export interface RetryOptions {
  /** Tries in all, the first included (for a follower: failed reconnects in a row). */
  attempts?: number;
  backoffMs?: number;
  maxBackoffMs?: number;
}

/** How often and how patiently to retry; waits double from `backoffMs` up to
 * `maxBackoffMs`, and a 503's `Retry-After` is honoured up to it. */
export declare class Retry {
  constructor(options?: RetryOptions);
  readonly attempts: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  /** The wait (ms) after `failures` failed tries. */
  delay(failures: number, retryAfterS?: number | null): number;
}

export interface ClientOptions {
  /** Sent as `Authorization: Bearer …` (and as `?api_key=` on the WebSocket). */
  apiKey?: string;
  headers?: Record<string, string>;
  /** Per request, each try (default 30 000). */
  timeoutMs?: number;
  /** Requests: reads and keyed writes are sent again after a connection error or a 503. */
  retry?: Retry | RetryOptions;
  /** Followers of live events: failed reconnects in a row before giving up (default 30). */
  reconnect?: Retry | RetryOptions;
  /** The fetch to use (default: the platform's). */
  fetch?: typeof fetch;
  /** The WebSocket class to use (default: the platform's global `WebSocket`). */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
}

export interface StartRunOptions {
  threadId?: string;
  metadata?: Record<string, any>;
  /** Made here when not given; a retry sends the same one, so one run is started. */
  idempotencyKey?: string;
}

export interface RunFilters {
  status?: RunStatus;
  agentId?: string;
  threadId?: string;
  limit?: number;
  cursor?: string;
  order?: "asc" | "desc";
}

export interface InterruptFilters {
  status?: InterruptStatus;
  agentId?: string;
  type?: string;
  threadId?: string;
  runId?: string;
  assignedTo?: string;
  limit?: number;
  cursor?: string;
  order?: "asc" | "desc";
}

export interface ResolveOptions {
  comment?: string;
  resolvedBy?: string;
  /** A fingerprint (quoted or bare) or `*`: the answer is taken only for that question
   * (null or absent: for whatever the question is now). */
  ifMatch?: string | null;
  /** Made here when not given; every retry of this answer carries the same one. */
  idempotencyKey?: string;
}

export interface ResolveManyOptions {
  /** Exactly one of `ids` and `filter` (the broker's field names, e.g. `thread_id`). */
  ids?: string[];
  filter?: Record<string, string>;
  comment?: string;
  resolvedBy?: string;
}

export interface FollowOptions {
  agentId?: string;
  type?: string;
  threadId?: string;
  runId?: string;
  /** Comma-separated kinds: `run`, `interrupt` (default both). */
  events?: string;
  /** An event id to resume after; `"0"` from the start of the retained log; none: live. */
  after?: string | null;
  signal?: AbortSignal;
}

export interface NewWebhookOptions {
  /** Default: every event. */
  events?: WebhookEvent[];
  /** Only these agents' events (default: every agent). */
  agents?: string[] | null;
  /** Only interrupts of these types (default: every type). */
  types?: string[] | null;
  /** `whsec_…`; made by the broker when not given. */
  secret?: string;
  enabled?: boolean;
  description?: string | null;
}

/** The fields to change: a null is sent as null (`agents: null`: every agent again). */
export interface WebhookChanges {
  url?: string;
  events?: WebhookEvent[];
  agents?: string[] | null;
  types?: string[] | null;
  enabled?: boolean;
  description?: string | null;
}

export declare class Client {
  constructor(baseUrl: string, options?: ClientOptions);
  readonly baseUrl: string;
  readonly retry: Retry;
  readonly reconnect: Retry;

  readonly agents: {
    /** The registered agents this key may use. */
    list(): Promise<Agent[]>;
  };

  readonly runs: {
    /** Starts a run; its `Idempotency-Key` makes a retry after a lost response safe. */
    start(agentId: string, input?: unknown, options?: StartRunOptions): Promise<RunStarted>;
    get(runId: string): Promise<Run>;
    /** One page of runs, newest first unless `order: "asc"`. */
    list(filters?: RunFilters): Promise<Page<Run>>;
    /** Every run the filters pick, page after page. */
    iterate(filters?: RunFilters): AsyncGenerator<Run, void, undefined>;
    /** Stops a queued, running or interrupted run; its pending interrupts close. */
    cancel(runId: string): Promise<Record<string, any>>;
    /** The run's events (SSE), from the start (or after `lastEventId`) to its end; a
     * dropped connection is followed by a reconnect with `Last-Event-ID`: every event
     * comes once, in order. Breaking out of the loop or aborting `signal` closes it. */
    events(runId: string, options?: { lastEventId?: string | null; signal?: AbortSignal }): AsyncGenerator<Event, void, undefined>;
  };

  readonly interrupts: {
    /** One page of interrupts (pending unless `status` says otherwise), oldest first. */
    list(filters?: InterruptFilters): Promise<Page<Interrupt>>;
    /** Every interrupt the filters pick, page after page. */
    iterate(filters?: InterruptFilters): AsyncGenerator<Interrupt, void, undefined>;
    /** The interrupt and its ETag, the fingerprint to answer it with (`ifMatch`). */
    get(interruptId: string): Promise<Fetched>;
    /** Every attempt to answer the interrupt, accepted or refused, oldest first. */
    audit(interruptId: string): Promise<AuditEntry[]>;
    /** Answers an interrupt; sent again with the same key after a connection error or a
     * 503, so the broker takes it once. `FingerprintMismatch` when `ifMatch` is stale. */
    resolve(interruptId: string, value: unknown, options?: ResolveOptions): Promise<Interrupt>;
    /** One answer for many interrupts; each is accepted or refused on its own
     * (`errorForResult` turns a refusal into its error). */
    resolveMany(value: unknown, options: ResolveManyOptions): Promise<BulkOutcome>;
    /** Changes who may answer a pending interrupt (`[]`: anyone), and who watches. */
    assign(interruptId: string, assignees: string[], options?: { watchers?: string[]; comment?: string }): Promise<Interrupt>;
    /** Takes back an answer held in its undo window: the interrupt is pending again. */
    withdraw(interruptId: string): Promise<Interrupt>;
  };

  readonly links: {
    /** Answers with an action link (the link, its URL or its token) on this client's
     * broker, as its confirmation page's button would. */
    use(link: ActionLink | string, options?: { answer?: string; comment?: string; fingerprint?: string }): Promise<LinkAnswer>;
    /** Uses the link of `choice` among an interrupt's action links. */
    answer(links: ActionLink[], choice: string, options?: { comment?: string }): Promise<LinkAnswer>;
    /** The link's confirmation page (`GET`), which changes nothing: 200 while it can
     * answer, 404, 409 or 410 otherwise, as for `use`. */
    show(link: ActionLink | string): Promise<LinkAnswer>;
  };

  /** Webhook subscriptions (`/admin/webhooks`; an `admin` key). */
  readonly webhooks: {
    /** Subscribes `url`; the answer is the only one that shows the secret. */
    create(url: string, options?: NewWebhookOptions): Promise<NewWebhook>;
    /** Every subscription, configured and made over the API (without secrets). */
    list(): Promise<Webhook[]>;
    get(id: string): Promise<Webhook>;
    /** Changes a subscription made over the API (`Conflict` `webhook_read_only` for a
     * configured one). */
    update(id: string, changes: WebhookChanges): Promise<Webhook>;
    /** Removes a subscription made over the API, and its delivery log. */
    delete(id: string): Promise<void>;
    /** Its delivery attempts, newest first (`limit`: 1 to 1000, default 100). */
    deliveries(id: string, options?: { limit?: number }): Promise<Delivery[]>;
  };

  /** The AG-UI endpoint (`POST /agui/{agentId}`). */
  readonly agui: {
    /** Posts a RunAgentInput and hands out the AG-UI events until the broker ends the
     * stream (after `RUN_FINISHED` or `RUN_ERROR`, both handed out). A refusal before the
     * stream is thrown as its error class. Sent once (it may start a run). */
    run(agentId: string, input: RunAgentInput, options?: { signal?: AbortSignal }): AsyncGenerator<AguiEvent, void, undefined>;
  };

  /** `GET /healthz` (open): the API process answers. */
  health(): Promise<{ status: string }>;
  /** `GET /readyz` (open): not ready (its 503) is returned, not thrown nor retried. */
  ready(): Promise<Readiness>;
  /** `GET /metrics`: the Prometheus text format (a reading key limited to no agents). */
  metrics(): Promise<string>;
  /** `GET /auth/config` (open): how people sign in. */
  authConfig(): Promise<AuthConfig>;
  /** `GET /.well-known/jwks.json` (open): the keys decision receipts verify against. */
  receiptKeys(): Promise<JwkSet>;

  /** Live run and interrupt events across runs (`WS /ws`), filtered. Never ends by
   * itself: a dropped connection is followed by a reconnect from the last event seen. */
  follow(options?: FollowOptions): AsyncGenerator<Event, void, undefined>;
}

/** An error answer of the broker: its HTTP status, code, message and other fields. */
export declare class BrokerError extends Error {
  constructor(status: number, code: string, message: string, details?: Record<string, any>, headers?: Headers);
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, any>;
  readonly headers: Headers;
}
/** 400, 405, 413, 415, 422: the request is wrong. */
export declare class InvalidInput extends BrokerError {}
/** 401: no API key, or an unknown one. */
export declare class Unauthorized extends BrokerError {}
/** 403: a missing scope, or not this caller's interrupt to answer. */
export declare class Forbidden extends BrokerError {}
/** 404: no such agent, run, interrupt, thread or webhook. */
export declare class NotFound extends BrokerError {}
/** 409: the state forbids it now; `resolution` on `already_resolved`. */
export declare class Conflict extends BrokerError {
  readonly resolution: Resolution | null;
}
/** 410: past its deadline or retention, or a used link. */
export declare class Gone extends BrokerError {}
/** 412: the question changed; `fingerprint` is the current one. */
export declare class FingerprintMismatch extends BrokerError {
  readonly fingerprint: string | null;
}
/** 503: Redis unavailable or the API stopping; retry. */
export declare class Unavailable extends BrokerError {
  readonly retryAfterS: number | null;
}

/** The error a bulk answer's result stands for; null for an accepted one. */
export declare function errorForResult(result: { status?: number; error?: any }): BrokerError | null;

/** The link of `choice` among an interrupt's action links; a RangeError otherwise. */
export declare function linkFor<L extends { choice: string }>(links: L[], choice: string): L;
/** A link's token: from the link, its URL (`…/links/<token>`), or the token itself. */
export declare function linkToken(link: { url: string } | string): string;

/** The delivery is not one the holder of the secret signed, or it is too old. */
export declare class WebhookVerificationError extends Error {}

/** The delivery's JSON payload once its Standard Webhooks signature and timestamp check
 * out (rejects with `WebhookVerificationError` otherwise). `body` is the raw body as
 * received; `headers` a `Headers`, a plain object or Node's `request.headers`. */
export declare function verifyWebhook<T = any>(
  secret: string,
  body: string | Uint8Array | ArrayBuffer,
  headers: Headers | Record<string, string | string[] | undefined>,
  options?: { toleranceS?: number; now?: number },
): Promise<T>;

/** SSE text in, messages out (for a follower of one's own). */
export declare class SSEDecoder {
  feed(text: string): { event: string; data: string; id: string | null }[];
}

/** The position of one follower of live events: what was handed out, and the waits. */
export declare class Follower {
  constructor(lastEventId: string | null | undefined, retry: Retry);
  last: string | null;
  finished: boolean;
  connected(): void;
  takeEvent(event: any): Event | null;
  takeSSE(message: { event: string; data: string; id: string | null }): Event | null;
  takeFrame(frame: any): Event | null;
  ended(): boolean;
  failed(error?: unknown): number;
}
