// The `counter` graph through the broker's /langgraph API with the real JS SDK, twice:
//   BASE=http://127.0.0.1:8000 node langgraph_race.mjs
// race: stops a run on its interrupt, then fires 20 resumes of it at once; each result is
//   "ok" or the refusal's HTTP status and error code. The winner's run is joined.
// rest: stops a run on its interrupt, answers that interrupt over the broker's REST API
//   (POST /interrupts/{id}/resolve), then the SDK joins the run, reads the thread's final
//   state, and resumes the answered interrupt once more (refused).
// Prints one JSON object for the Python test to check.
import { Client } from "@langchain/langgraph-sdk";

const API_KEY = process.env.API_KEY ?? null;
// one request per call, all 20 in flight together (the SDK's defaults queue 4, retry 4)
const client = new Client({
  apiUrl: `${process.env.BASE}/langgraph`,
  apiKey: API_KEY,
  callerOptions: { maxConcurrency: Infinity, maxRetries: 0 },
});

/** A thread whose `counter` run has stopped on its interrupt. */
async function stopped() {
  const { thread_id } = await client.threads.create();
  const result = await client.runs.wait(thread_id, "counter", { input: {} });
  return { tid: thread_id, interrupt: result.__interrupt__[0] };
}

/** A refused SDK call as {status, code} (the HTTP status, the broker's error code), or
 * {message} for anything that is not an HTTP refusal. */
function refusal(err) {
  try {
    return { status: err.status, code: JSON.parse(err.text).error.code };
  } catch {
    return { status: err.status ?? null, message: String(err.message ?? err) };
  }
}

/** Calls the broker's REST API; returns the JSON body, throws on a non-2xx. */
async function rest(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (API_KEY) headers["x-api-key"] = API_KEY;
  const r = await fetch(`${process.env.BASE}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function race() {
  const { tid, interrupt } = await stopped();
  const runs = [];
  const results = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      try {
        const run = await client.runs.create(tid, "counter", {
          command: { resume: { [interrupt.id]: `answer ${i}` } },
        });
        runs.push(run.run_id);
        return "ok";
      } catch (err) {
        return refusal(err);
      }
    }),
  );
  const [won] = runs;
  const final = won ? await client.runs.join(tid, won) : null;
  return {
    thread_id: tid,
    results,
    final,
    run_status: won ? (await client.runs.get(tid, won)).status : null,
    thread_status: (await client.threads.get(tid)).status,
  };
}

async function answeredOverRest() {
  const { tid, interrupt } = await stopped();
  const { items } = await rest("GET", `/interrupts?thread_id=${tid}&status=pending`);
  const [{ id, run_id }] = items;
  await rest("POST", `/interrupts/${id}/resolve`, { value: "from rest" });
  const joined = await client.runs.join(tid, run_id);
  const state = await client.threads.getState(tid);
  let refused = null;
  try {
    await client.runs.create(tid, "counter", { command: { resume: { [interrupt.id]: "late" } } });
  } catch (err) {
    refused = refusal(err);
  }
  return {
    thread_id: tid,
    joined,
    values: state.values,
    next: state.next,
    run_status: (await client.runs.get(tid, run_id)).status,
    thread_status: (await client.threads.get(tid)).status,
    refused,
  };
}

console.log(JSON.stringify({ race: await race(), rest: await answeredOverRest() }));
