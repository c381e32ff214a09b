/**
 * `POST /agui/{agent_id}`: the broker's AG-UI endpoint. A RunAgentInput goes in (camelCase,
 * as the AG-UI protocol spells it); an SSE stream of AG-UI events comes out, each a
 * `data:` line, until the run stops on interrupts (`RUN_FINISHED`) or fails
 * (`RUN_ERROR`). A refusal before the stream starts (a missing scope, an unknown agent,
 * another agent's thread, a malformed input) is the broker's usual HTTP error and is
 * thrown as its class; a `RUN_ERROR` is an event like any other and is handed out.
 *
 * The request is sent once: it may start a run, and it carries no Idempotency-Key. The
 * same input sent again shows where the thread stands (what a `RUN_ERROR` with
 * `redis_unavailable` or `shutting_down` asks for).
 */

import { seg } from "./calls.js";
import { fromResponse } from "./errors.js";
import { SSEDecoder } from "./follow.js";
import { watchedConnection } from "./streams.js";

/**
 * The body: the input with a fresh `runId` and no `messages` when it names none.
 * @param {Record<string, unknown>} input
 */
export function runAgentInput(input) {
  if (typeof input?.threadId !== "string") throw new TypeError("an AG-UI input needs a threadId");
  return { runId: globalThis.crypto.randomUUID(), messages: [], ...input };
}

/** @param {string} agentId */
export const aguiPath = (agentId) => `/agui/${seg(agentId)}`;

/**
 * The decoded AG-UI events of one request, until the broker ends the stream.
 * @param {(signal: AbortSignal) => Promise<Response>} post sends the request
 * @param {AbortSignal} [signal]
 */
export async function* aguiEvents(post, signal) {
  signal?.throwIfAborted();
  const connection = watchedConnection(signal, "the AG-UI stream");
  try {
    connection.watch();
    const response = await post(connection.signal);
    if (response.status >= 400) throw await fromResponse(response);
    if (!response.body) throw new TypeError("this platform's fetch does not stream responses");
    const reader = response.body.getReader();
    const text = new TextDecoder();
    const decoder = new SSEDecoder();
    try {
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) return;
        connection.watch();
        for (const message of decoder.feed(text.decode(chunk.value, { stream: true }))) {
          yield JSON.parse(message.data);
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  } finally {
    connection.close();
  }
}
