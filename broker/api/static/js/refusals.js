// Why the broker refused an answer, in words a person can act on.

import { accessToken } from "./api.js";
import { time } from "./dom.js";
import { answerText, assigneeText, who } from "./words.js";

export function explain(err, record) {
  const e = err.error ?? {};
  switch (err.status) {
    case 0:
      return "Could not reach the broker. Check the connection and try again.";
    case 403:
      if (err.code === "not_eligible") {
        const of = record.approval?.of;
        return `This question is decided by the votes of ${of ?? "others"}; you are not among them.`;
      }
      if (err.code === "not_your_turn") {
        return `This chain of approvals waits for ${e.step ?? "another step"}; it is not your turn yet.`;
      }
      if (err.code === "not_assignee") {
        const names = (record.assignees ?? []).map(assigneeText).join(", ");
        return `This question is assigned to ${names || "other people"}; you may not answer it.`;
      }
      if (/on_behalf/.test(err.message)) {
        return "Not answered: this API key may not answer on someone's behalf (it lacks the " +
          "interrupts:on_behalf scope), so it may not send the name in “Answer as”. Clear " +
          "“Answer as” to answer as the key itself.";
      }
      return accessToken()
        ? `You may not answer questions here: ${err.message}`
        : "Your API key may not answer questions (it lacks the interrupts:resolve scope).";
    case 404:
      return "This question no longer exists.";
    case 409:
      if (err.code === "already_resolved") {
        const r = e.resolution ?? {};
        return `Someone else answered first: ${who(r)} answered ${answerText(r.value)}` +
          `${r.resolved_at ? ` at ${time(r.resolved_at)}` : ""}. Your answer was not used.`;
      }
      if (err.code === "already_voted") return "Your vote on this question is already recorded; each person votes once.";
      if (["interrupt_closed", "run_finished"].includes(err.code)) {
        return "This question was closed: its run ended before your answer arrived. Your answer was not used.";
      }
      return `This question takes no answer now (${err.code ?? 409}): ${err.message}`;
    case 410:
      return `This question expired${record.expires_at ? ` at ${time(record.expires_at)}` : ""} ` +
        "and no longer takes answers.";
    case 412:
      return "This question changed since you opened it; review the new version. " +
        "Your answer was not sent.";
    case 413:
      return "This answer is too large for the broker.";
    case 422:
      return `The broker did not accept this answer: ${err.message}`;
    default:
      return `The broker refused this answer (${err.status}): ${err.message}`;
  }
}
