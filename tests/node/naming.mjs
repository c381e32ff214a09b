// Runs the naming agent through the broker with the real AG-UI client.
//   BASE=http://127.0.0.1:8000 node naming.mjs
// Step 1 starts the run; the approval interrupt arrives as CUSTOM on_interrupt.
// Step 2 answers it the legacy CopilotKit way, forwardedProps.command.resume.
// Step 3 answers the ask interrupt with a resume[] entry (the AG-UI standard).
// Prints one JSON line per step for the Python test to check.
import { HttpAgent } from "@ag-ui/client";

const base = process.env.BASE;
const threadId = process.env.THREAD_ID ?? crypto.randomUUID();
const headers = process.env.API_KEY ? { Authorization: `Bearer ${process.env.API_KEY}` } : {};

function recorder() {
  const seen = { types: [], custom: [], finished: null, errors: [], text: [] };
  return {
    seen,
    subscriber: {
      onEvent: ({ event }) => { seen.types.push(event.type); },
      onCustomEvent: ({ event }) => { seen.custom.push({ name: event.name, value: event.value }); },
      onTextMessageEndEvent: ({ textMessageBuffer }) => { seen.text.push(textMessageBuffer); },
      onRunFinishedEvent: (p) => {
        seen.finished = { outcome: p.outcome ?? null, interrupts: p.interrupts ?? null };
      },
      onRunErrorEvent: ({ event }) => { seen.errors.push({ message: event.message, code: event.code }); },
    },
  };
}

async function step(agent, name, params) {
  const { seen, subscriber } = recorder();
  let failure = null;
  try {
    await agent.runAgent(params, subscriber);
  } catch (e) {
    failure = `${e.constructor.name}: ${e.message}`;
  }
  const last = agent.messages.filter((m) => m.role === "assistant").at(-1);
  console.log(JSON.stringify({
    step: name, ...seen, failure,
    pending: agent.pendingInterrupts.map((i) => i.id),
    lastAssistant: last ? last.content : null,
  }));
  return seen;
}

const agent = new HttpAgent({
  url: `${base}/agui/naming`,
  threadId,
  headers,
  initialMessages: [{ id: crypto.randomUUID(), role: "user", content: "hi there" }],
});

// By default RUN_FINISHED carries no interrupt outcome, so the client keeps no pending
// interrupts and lets the legacy forwardedProps.command.resume through on the next run.
await step(agent, "start", {});
// This run asks for the outcome, so the ask interrupt comes with an id for resume[].
const asked = await step(agent, "approve", {
  forwardedProps: { command: { resume: true }, interruptOutcome: true },
});
const interrupts = asked.finished?.interrupts ?? [];
await step(agent, "name", {
  resume: interrupts.map((i) => ({ interruptId: i.id, status: "resolved", payload: process.env.NAME ?? "Ada" })),
});
