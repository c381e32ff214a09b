// The inbox's filters: what the form asks for, its choices kept to the values present,
// and a chip per agent with its count that filters by it.

import { clear, fill, h } from "./dom.js";

export function readFilters(form) {
  const f = new FormData(form);
  return {
    agent: f.get("agent") || "",
    type: f.get("type") || "",
    thread: String(f.get("thread") || "").trim(),
    order: f.get("order") || "asc",
  };
}

// The select `name` offers `values` (and `selected`, kept while nothing has it).
export function syncOptions(form, name, values, selected) {
  const select = form.elements[name];
  const have = [...select.options].slice(1).map((o) => o.value);
  const want = selected && !values.includes(selected) ? [...values, selected] : values;
  if (have.join("\n") === want.join("\n")) return;
  fill(select, h("option", { value: "" }, "all"), ...want.map((v) => h("option", { value: v }, v)));
  select.value = selected;
}

// A chip per agent with its count; onPick(agent) when one is clicked.
export function renderCounts(list, perAgent, selected, onPick) {
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.agent : null;
  clear(list);
  for (const [agent, n] of [...perAgent].sort()) {
    const chip = h("button", { type: "button", "aria-pressed": String(agent === selected), dataset: { agent } }, `${agent} ${n}`);
    chip.addEventListener("click", () => onPick(agent));
    list.append(h("li", {}, chip));
    if (agent === focused) chip.focus();
  }
}
