// Compiled by `npm run check` (never run): the published types fit a user's code.
import {
  BrokerError,
  Client,
  Conflict,
  FingerprintMismatch,
  Retry,
  errorForResult,
  linkFor,
  verifyWebhook,
  type ActionLink,
  type AguiEvent,
  type AuthConfig,
  type Delivery,
  type Event,
  type Interrupt,
  type JwkSet,
  type LinkAnswer,
  type NewWebhook,
  type Page,
  type Readiness,
  type Run,
  type RunAgentInput,
  type Webhook,
} from "interrupt-broker-client";

export async function example(url: string, secret: string, body: string, headers: Headers): Promise<void> {
  const broker = new Client(url, { apiKey: "ibk_x", retry: new Retry({ attempts: 3 }), reconnect: { backoffMs: 50 } });
  const run = await broker.runs.start("naming", { messages: [] }, { threadId: "t" });
  const page: Page<Run> = await broker.runs.list({ agentId: "naming", limit: 10, order: "asc" });
  const next: string | null = page.nextCursor;
  for await (const r of broker.runs.iterate({ status: "interrupted" })) r.run_id.toUpperCase();
  for await (const event of broker.runs.events(run.run_id, { lastEventId: next })) {
    const e: Event = event;
    if (e.type !== "run.interrupted") continue;
    const question = await broker.interrupts.get(String(e.data.interrupt_ids[0]));
    try {
      const answered: Interrupt = await broker.interrupts.resolve(question.interrupt.id, true, {
        ifMatch: question.fingerprint ?? undefined,
        comment: "ok",
      });
      answered.resolution?.value;
    } catch (error) {
      if (error instanceof Conflict) error.resolution?.value;
      if (error instanceof FingerprintMismatch) error.fingerprint?.length;
      if (error instanceof BrokerError) [error.status, error.code, error.message, error.details];
    }
  }
  for await (const i of broker.interrupts.iterate({ assignedTo: "user:a@example.com" })) i.status;
  const bulk = await broker.interrupts.resolveMany(true, { filter: { thread_id: "t" } });
  bulk.results.map(errorForResult).map((err) => err?.code);
  await broker.interrupts.assign("i", ["group:ops"], { watchers: [] });
  await broker.interrupts.withdraw("i");
  (await broker.interrupts.audit("i")).map((a) => a.outcome);
  (await broker.agents.list()).map((a) => a.agent_id);
  await broker.runs.cancel(run.run_id);
  const controller = new AbortController();
  for await (const live of broker.follow({ threadId: "t", after: "0", signal: controller.signal })) live.id;
  const payload = await verifyWebhook<{ data: { links: ActionLink[] } }>(secret, body, headers);
  const used = await broker.links.answer(payload.data.links, "approve", { comment: "from the mail" });
  if (!used.ok) await broker.links.use(linkFor(payload.data.links, "reject").url);
}

// the README's example
export async function readme(): Promise<void> {
  const broker = new Client("http://127.0.0.1:8000", { apiKey: "ibk_…" });
  const run = await broker.runs.start("naming", { messages: [{ role: "user", content: "hi" }] });
  for await (const event of broker.runs.events(run.run_id)) {   // SSE; reconnects, misses nothing
    if (event.type !== "run.interrupted") continue;
    const question = await broker.interrupts.get(event.data.interrupt_ids[0]);
    const answer = question.interrupt.type === "ask" ? "Ada" : true;   // a name; approve
    await broker.interrupts.resolve(question.interrupt.id, answer, { ifMatch: question.fingerprint });
  }
}

// webhook subscriptions, AG-UI, the probes and the public documents
export async function operations(url: string): Promise<void> {
  const broker = new Client(url, { apiKey: "ibk_admin" });
  const made: NewWebhook = await broker.webhooks.create("https://hooks.example.com/b", {
    events: ["interrupt.created", "run.completed"],
    agents: ["naming"],
    description: "ops",
  });
  made.secret.startsWith("whsec_");
  const changed: Webhook = await broker.webhooks.update(made.id, { enabled: false, agents: null, description: null });
  (await broker.webhooks.list()).map((w) => [w.source, changed.enabled]);
  (await broker.webhooks.get(made.id)).events;
  const sent: Delivery[] = await broker.webhooks.deliveries(made.id, { limit: 10 });
  sent.map((d) => [d.outcome, d.status_code]);
  await broker.webhooks.delete(made.id);

  const input: RunAgentInput = { threadId: "t", messages: [{ id: "u1", role: "user", content: "hi" }] };
  for await (const event of broker.agui.run("naming", input)) {
    const e: AguiEvent = event;
    if (e.type === "RUN_FINISHED") {
      const interruptId = String(e.outcome?.interrupts?.[0]?.id);
      const resume = { threadId: "t", resume: [{ interruptId, status: "resolved" as const, payload: true }] };
      for await (const next of broker.agui.run("naming", resume, { signal: AbortSignal.timeout(60_000) })) next.type;
    }
  }

  (await broker.health()).status;
  const ready: Readiness = await broker.ready();
  if (ready.status === "not_ready") ready.checks.workers;
  (await broker.metrics()).split("\n");
  const config: AuthConfig = await broker.authConfig();
  config.oidc?.issuer;
  const keys: JwkSet = await broker.receiptKeys();
  keys.keys.map((k) => k.kid);
  const page: LinkAnswer = await broker.links.show("https://b.example/links/tok");
  page.ok;
}
