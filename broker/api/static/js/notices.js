// The notes the inbox keeps of interrupts that left it: answered (here or elsewhere),
// answered and held for an undo window, expired, or closed with their run.

import { h, questionText } from "./dom.js";
import { answerText, commentLine, who } from "./words.js";

const MAX_NOTICES = 6;

function outcomeText(status, resolution) {
  const answered = `${answerText(resolution?.value)} — answered by ${who(resolution)}`;
  if (status === "resolved") return answered;
  if (status === "accepted") return `${answered}; it resumes once its undo window closes`;
  if (status === "expired") return "expired without an answer";
  return "closed: its run ended";
}

// Prepends the note for `record` to `list`, keeping the newest few.
export function notice(list, record, status, resolution) {
  const q = questionText(record.value);
  const what = q ? `${record.agent_id}: “${q}”` : `${record.agent_id} (${record.type ?? "interrupt"})`;
  const answered = status === "resolved" || status === "accepted";
  const dismiss = h("button", { type: "button", class: "quiet", "aria-label": "Dismiss" }, "×");
  const item = h("li", { dataset: { interruptId: record.id, status } },
    h("span", {}, `${what} · ${outcomeText(status, resolution)}`, answered ? commentLine(resolution) : null), dismiss);
  dismiss.addEventListener("click", () => item.remove());
  list.prepend(item);
  while (list.children.length > MAX_NOTICES) list.lastElementChild.remove();
}
