// Runs the naming agent through the broker's /langgraph API with the real JS SDK.
//   BASE=http://127.0.0.1:8000 node langgraph_sdk.mjs
// Starts a run, finds the thread among the interrupted ones, reads its interrupt,
// resumes it by interrupt id (streaming the updates), answers the second question with a
// bare value (streaming the reply's tokens), joins the run and reads the final state; then a resume naming the
// answered interrupt again, which the broker refuses; and another thread ignored as
// Agent Inbox does it.
// Prints one JSON object for the Python test to check.
import { Client } from "@langchain/langgraph-sdk";

const client = new Client({
  apiUrl: `${process.env.BASE}/langgraph`,
  apiKey: process.env.API_KEY ?? null,
});
const out = {};

const thread = await client.threads.create({ metadata: { case: "js" } });
const tid = thread.thread_id;
out.created = thread.status;
const stopped = await client.runs.wait(tid, "naming", {
  input: { messages: [{ role: "user", content: "hi from js" }] },
});
out.waited = stopped.__interrupt__.map((i) => i.value);

const waiting = await client.threads.search({ status: "interrupted", metadata: { case: "js" } });
out.found = waiting.map((t) => t.thread_id === tid);
const [first] = Object.values(waiting[0].interrupts).flat();
out.first = first.value;

const state = await client.threads.getState(tid);
out.next = state.next;

out.streamed = [];
for await (const part of client.runs.stream(tid, "naming", {
  command: { resume: { [first.id]: true } },
  streamMode: "updates",
})) {
  out.streamed.push(part.event);
  if (part.event === "updates" && part.data.__interrupt__) {
    out.second = part.data.__interrupt__[0].value;
  }
}

// the bare answer, streaming the reply as the model writes it (messages-tuple, as
// useStream asks for it), then joining the run the stream named
const said = {};
let run = null;
for await (const part of client.runs.stream(tid, "naming", {
  command: { resume: "Ada" },
  streamMode: ["messages-tuple", "values"],
})) {
  if (part.event === "metadata") run = part.data;
  if (part.event === "messages") {
    const [chunk] = part.data;
    said[chunk.id] = (said[chunk.id] ?? "") + chunk.content;
  }
}
const final = await client.runs.join(tid, run.run_id);
out.agent_name = final.agent_name;
out.reply = final.messages.at(-1).content;
out.said = said[final.messages.at(-1).id] ?? null;
out.thread_status = (await client.threads.get(tid)).status;
out.run_status = (await client.runs.get(tid, run.run_id)).status;

try {
  await client.runs.create(tid, "naming", { command: { resume: { [first.id]: false } } });
  out.refused = null;
} catch (err) {
  out.refused = { status: err.status, message: err.message };
}
// Agent Inbox's ignore: the thread's run ends and its question closes
const other = (await client.threads.create()).thread_id;
await client.runs.wait(other, "naming", { input: { messages: [{ role: "user", content: "hi" }] } });
await client.threads.updateState(other, { values: null, asNode: "__end__" });
const ignored = await client.threads.get(other);
out.ignored = { status: ignored.status, interrupts: ignored.interrupts };

console.log(JSON.stringify(out));
