// The CopilotKit-style graph through the real AG-UI client:
//   BASE=http://127.0.0.1:8000 node copilot.mjs ask      -> prints the interrupt it received
//   BASE=... THREAD_ID=... node copilot.mjs follow        -> prints what the next run shows
// Between the two, the test answers the interrupt over REST.
import { HttpAgent } from "@ag-ui/client";

const [mode] = process.argv.slice(2);
const agent = new HttpAgent({
  url: `${process.env.BASE}/agui/copilot`,
  threadId: process.env.THREAD_ID,
  initialMessages: [
    { id: "u1", role: "user", content: "Book a call with Alice about the Q3 roadmap" },
  ],
});
const seen = { custom: [], types: [], errors: [] };
await agent.runAgent(
  {
    tools: [{ name: "confirm", description: "ask the user", parameters: { type: "object", properties: {} } }],
    context: [{ description: "user time zone", value: "UTC" }],
  },
  {
    onEvent: ({ event }) => { seen.types.push(event.type); },
    onCustomEvent: ({ event }) => { seen.custom.push({ name: event.name, value: event.value }); },
    onRunErrorEvent: ({ event }) => { seen.errors.push(event.message); },
  },
);
const texts = agent.messages.map((m) => (typeof m.content === "string" ? m.content : ""));
console.log(JSON.stringify({ mode, ...seen, texts, pending: agent.pendingInterrupts.length }));
