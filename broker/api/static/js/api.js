// Every HTTP call of the page: JSON in and out, the API key on each request, and a
// prompt for a key when the broker answers 401.

const KEY = "broker.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    const error = body && typeof body === "object" ? body.error ?? {} : {};
    super(error.message || (status ? `HTTP ${status}` : "the broker could not be reached"));
    this.status = status;
    this.code = error.code ?? null;
    this.error = error;
  }
}

let askForKey = null;
let asking = null;

// `prompt(message)` shows the key dialog and resolves true once a key was entered.
export function onKeyNeeded(prompt) {
  askForKey = prompt;
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

// Concurrent 401s share one dialog.
export function needKey(message) {
  if (!askForKey) return Promise.resolve(false);
  asking ??= askForKey(message).finally(() => {
    asking = null;
  });
  return asking;
}

export function authHeaders() {
  const key = apiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

async function parse(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: { code: "not_json", message: text.slice(0, 300) } };
  }
}

export async function request(path, { method = "GET", body, headers = {} } = {}) {
  for (;;) {
    const init = {
      method,
      cache: "no-store",
      headers: { accept: "application/json", ...authHeaders(), ...headers },
    };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, null);
    }
    if (res.status === 304) return { status: 304, etag: res.headers.get("etag"), data: null };
    const data = await parse(res);
    if (res.status === 401 && (await needKey(data?.error?.message))) continue;
    if (!res.ok) throw new ApiError(res.status, data);
    return { status: res.status, etag: res.headers.get("etag"), data };
  }
}

export async function get(path, params) {
  return (await request(withQuery(path, params))).data;
}

export async function post(path, body) {
  return (await request(path, { method: "POST", body })).data;
}

export function withQuery(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") query.set(k, v);
  }
  const q = query.toString();
  return q ? `${path}?${q}` : path;
}
