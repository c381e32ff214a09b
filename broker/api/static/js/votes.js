// The votes on an interrupt decided by several people (its `approval`: a quorum of a
// group, or a chain of names in turn): how far the votes have come, and who voted how.

import { h, fill, timeEl } from "./dom.js";

const STATES = { decided: " · decided", closed: " · closed" };

function tally(approval) {
  const votes = Array.isArray(approval?.votes) ? approval.votes : [];
  const approvals = votes.filter((v) => v?.vote === true).length;
  return { votes, approvals, rejections: votes.length - approvals };
}

// "1 of 2 approvals · group:finance"; for a chain, the step it waits for:
// "Step 2 of 2 · waiting for user:cfo@example.com".
export function approvalSummary(approval) {
  const { approvals, rejections } = tally(approval);
  const after = STATES[approval.state] ?? "";
  if (Array.isArray(approval.chain)) {
    const steps = approval.chain.length;
    if (approval.state !== "collecting") return `${approvals} of ${steps} steps approved${after}`;
    return `Step ${Math.min(approvals + 1, steps)} of ${steps} · waiting for ${approval.chain[approvals] ?? "nobody"}`;
  }
  const n = approval.quorum;
  const word = (what) => `${what}${n === 1 ? "" : "s"}`;
  const rejected = approval.reject === "quorum" && rejections ? `, ${rejections} of ${n} ${word("rejection")}` : "";
  return `${approvals} of ${n} ${word("approval")}${rejected} · ${approval.of}${after}`;
}

// Who cast a vote: the person, else the name or key answering for them.
export function voterName(vote) {
  const by = vote?.by;
  return by?.email || by?.sub || vote?.resolved_by || vote?.key_id || "someone";
}

function voteItem(vote) {
  const how = vote?.vote === true ? "approved" : "rejected";
  return h("li", { dataset: { vote: how } },
    h("strong", {}, voterName(vote)), ` ${how}`,
    vote?.decides ? " (on their behalf, deciding alone)" : "",
    vote?.at ? [" · ", timeEl(vote.at)] : null,
    vote?.comment ? h("span", { class: "comment", dataset: { comment: "" } }, ` — “${vote.comment}”`) : null);
}

// Fills `box` with the summary and the votes so far; hides it when there is no rule.
export function showVotes(box, approval) {
  box.hidden = !approval;
  if (!approval) return fill(box);
  box.dataset.state = approval.state ?? "";
  const { votes } = tally(approval);
  return fill(box,
    h("p", { class: "summary", dataset: { approvalSummary: "" } }, approvalSummary(approval)),
    votes.length
      ? h("ul", { class: "votes", "aria-label": "Votes so far" }, votes.map(voteItem))
      : h("p", { class: "muted", dataset: { noVotes: "" } }, "No votes yet."));
}

// A new box showing them (null without a rule).
export function votesBox(approval) {
  if (!approval) return null;
  return showVotes(h("div", { class: "approval", dataset: { approval: "" } }), approval);
}
