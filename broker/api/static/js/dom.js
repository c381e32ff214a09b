// Small DOM helpers: build elements without innerHTML, so no text is ever parsed as markup.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// Replaces the children of `el`; null, undefined and false children are left out.
export function fill(el, ...children) {
  return append(clear(el), children);
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

export function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

export function timeEl(iso) {
  return h("time", { datetime: iso ?? "" }, time(iso));
}

// The one-line text of an interrupt: its value's `content` when that is a string.
export function questionText(value) {
  if (typeof value === "string") return value;
  if (value && typeof value === "object") {
    if (typeof value.content === "string") return value.content;
    if (typeof value.question === "string") return value.question;
    if (Array.isArray(value.action_requests)) {
      const names = value.action_requests.map((a) => a?.name).filter(Boolean);
      return `Review ${names.length === 1 ? "a call to" : "calls to"} ${names.join(", ")}`;
    }
  }
  return "";
}

let counter = 0;

// An id unique in the document: one interrupt may show in the inbox and on its run's page.
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}
