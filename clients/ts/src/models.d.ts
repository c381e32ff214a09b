/**
 * The shapes the broker answers with: the JSON as the broker sends it (snake_case
 * fields, nothing converted or dropped; a field a newer broker adds is still there).
 */

export type RunStatus = "queued" | "running" | "interrupted" | "succeeded" | "failed" | "cancelled";
export type InterruptStatus = "pending" | "accepted" | "resolved" | "expired" | "cancelled";
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface Agent {
  agent_id: string;
  description: string;
  source: string;
}

/** `POST /runs`: the new run (or, for a repeated `Idempotency-Key`, the first). */
export interface RunStarted {
  run_id: string;
  thread_id: string;
  status: RunStatus;
}

export interface Run {
  run_id: string;
  thread_id: string;
  agent_id: string;
  status: RunStatus;
  input?: any;
  metadata?: Record<string, any>;
  pending_interrupts?: string[];
  output?: any;
  error?: any;
  attempts?: number;
  created_at?: string;
  updated_at?: string;
  [field: string]: any;
}

export interface Resolution {
  value: any;
  resolved_by?: string | null;
  resolved_at?: string;
  channel?: string;
  key_id?: string | null;
  comment?: string | null;
  receipt?: string;
  [field: string]: any;
}

export interface Interrupt {
  id: string;
  interrupt_id?: string;
  run_id: string;
  thread_id: string;
  agent_id: string;
  type?: string | null;
  kind?: string;
  value?: any;
  response_schema?: any;
  status: InterruptStatus;
  created_at?: string;
  updated_at?: string;
  expires_at?: string | null;
  expiry?: Record<string, any> | null;
  resolution?: Resolution | null;
  assignees?: string[];
  watchers?: string[];
  fingerprint?: string;
  escalation?: any;
  approval?: any;
  undo?: any;
  [field: string]: any;
}

/** One attempt to answer: `outcome` is `accepted` or the refusal's code. */
export interface AuditEntry {
  at: string;
  actor: string;
  key_id?: string | null;
  person?: Record<string, any> | null;
  channel: string;
  outcome: string;
  payload_sha256?: string | null;
  comment?: string;
  [field: string]: any;
}

export interface BulkResult {
  interrupt_id: string;
  status: number;
  interrupt?: Interrupt;
  error?: { code: string; message: string; [field: string]: any };
}

export interface BulkOutcome {
  results: BulkResult[];
  accepted: number;
  refused: number;
  truncated: boolean;
}

/** One run or interrupt event: `id` is its stream id, a resume cursor. A `WS /ws`
 * follower also hands out `{"type": "gap"}` frames: events before were trimmed. */
export interface Event {
  id: string;
  type: string;
  ts?: number;
  run_id?: string;
  thread_id?: string;
  agent_id?: string;
  data: Record<string, any>;
  [field: string]: any;
}

/** One choice's action link, as an `interrupt.created` webhook carries it. */
export interface ActionLink {
  choice: string;
  label: string;
  url: string;
  expires_at: string;
}

/** One page of a list; `nextCursor` is null on the last. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** An interrupt and its ETag: `fingerprint` is what to send back as `ifMatch`. */
export interface Fetched {
  interrupt: Interrupt;
  etag: string | null;
  fingerprint: string | null;
}

/** What using an action link got: the page's status (200 answered; 404 not a link;
 * 409 already closed; 410 expired or used; 412 the question changed; 422 refused). */
export interface LinkAnswer {
  status: number;
  ok: boolean;
  page: string;
}

export type WebhookEvent =
  | "interrupt.created"
  | "interrupt.accepted"
  | "interrupt.withdrawn"
  | "interrupt.resolved"
  | "interrupt.expired"
  | "interrupt.assigned"
  | "interrupt.reminded"
  | "run.succeeded"
  | "run.failed"
  | "run.cancelled"
  | "run.completed";

/** A webhook subscription, as `/admin/webhooks` shows it (never its secret). `source`:
 * `config` (from BROKER_WEBHOOKS, read-only) or `api`. */
export interface Webhook {
  id: string;
  url: string;
  events: WebhookEvent[];
  agents: string[] | null;
  types: string[] | null;
  enabled: boolean;
  description: string | null;
  created_at: string | null;
  source: "config" | "api";
  [field: string]: any;
}

/** A subscription just made: the one answer that shows its `secret`. */
export interface NewWebhook extends Webhook {
  secret: string;
}

/** One delivery attempt of one event to a subscription. */
export interface Delivery {
  id: string;
  event: string;
  attempt: number;
  at: string;
  status_code?: number | null;
  error?: string | null;
  duration_ms?: number;
  outcome: "delivered" | "failed" | "gave_up" | "refused";
  next_attempt_in_s?: number;
  [field: string]: any;
}

/** `GET /readyz`: `ready` when Redis answers and a worker has a recent heartbeat. */
export interface Readiness {
  status: "ready" | "not_ready";
  checks: { redis: string; workers: number | null; [check: string]: any };
}

/** `GET /auth/config`: the OpenID provider people sign in with, or null. */
export interface AuthConfig {
  oidc: {
    issuer: string;
    /** The dashboard's public client at the provider; null: it signs nobody in. */
    client_id: string | null;
    audience: string;
    scope: string;
  } | null;
}

/** One public key of decision receipts (RFC 8037 OKP, Ed25519). */
export interface Jwk {
  kty: "OKP";
  crv: "Ed25519";
  x: string;
  kid: string;
  use: "sig";
  alg: "EdDSA";
}

/** `GET /.well-known/jwks.json`: every configured receipt key; empty when receipts are off. */
export interface JwkSet {
  keys: Jwk[];
}

/** An answer to a pending interrupt inside an AG-UI input. */
export interface AguiResume {
  interruptId: string;
  status: "resolved" | "cancelled";
  payload?: any;
}

/** An AG-UI RunAgentInput, camelCase as the protocol spells it; `runId` (a fresh one)
 * and `messages` (none) may be left out. */
export interface RunAgentInput {
  threadId: string;
  runId?: string;
  messages?: { id: string; role: string; content?: any; [field: string]: any }[];
  state?: any;
  tools?: { name: string; description?: string; parameters?: any }[];
  context?: { description: string; value: string }[];
  forwardedProps?: Record<string, any>;
  resume?: AguiResume[];
  [field: string]: any;
}

/** One AG-UI event (`RUN_STARTED`, `TEXT_MESSAGE_CONTENT`, `CUSTOM`, `RUN_FINISHED`,
 * `RUN_ERROR`...), as the broker sends it. */
export interface AguiEvent {
  type: string;
  [field: string]: any;
}
