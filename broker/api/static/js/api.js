// Every HTTP call of the page: JSON in and out, the credential on each request (a signed-in
// person's access token, or an API key), and a prompt for one when the broker answers 401.
// Both are kept in this tab only (session storage), never in local storage.

const KEY = "broker.apiKey";
const TOKEN = "broker.accessToken";

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

// `prompt(message)` asks for a credential (sign-in or key) and resolves true once one is
// there to retry with.
export function onKeyNeeded(prompt) {
  askForKey = prompt;
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

// A key and a person's token are exclusive: setting one forgets the other.
export function setApiKey(key) {
  if (key) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.removeItem(TOKEN);
  } else sessionStorage.removeItem(KEY);
}

export function accessToken() {
  return sessionStorage.getItem(TOKEN);
}

export function setAccessToken(token) {
  if (token) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.removeItem(KEY);
  } else sessionStorage.removeItem(TOKEN);
}

// What goes after "Bearer " (and in `?api_key=` where headers cannot go).
export function credential() {
  return accessToken() ?? apiKey();
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
  const secret = credential();
  return secret ? { authorization: `Bearer ${secret}` } : {};
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
    const used = credential();
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, null);
    }
    if (res.status === 304) return { status: 304, etag: res.headers.get("etag"), data: null };
    const data = await parse(res);
    // a credential that changed meanwhile (another request's prompt) is tried first
    if (res.status === 401 && (credential() !== used || (await needKey(data?.error?.message)))) continue;
    if (!res.ok) throw new ApiError(res.status, data);
    return { status: res.status, etag: res.headers.get("etag"), data };
  }
}

export async function get(path, params) {
  return (await request(withQuery(path, params))).data;
}

export async function post(path, body, headers = {}) {
  return (await request(path, { method: "POST", body, headers })).data;
}

export function withQuery(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") query.set(k, v);
  }
  const q = query.toString();
  return q ? `${path}?${q}` : path;
}
