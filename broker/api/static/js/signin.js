// Sign-in by OpenID Connect: the authorization code flow with PKCE (S256) for a public
// client, the dashboard itself. The broker says whether it is configured
// (`GET /auth/config`); the access token it yields is used exactly as an API key is.

import { accessToken, setAccessToken } from "./api.js";

const FLOW = "broker.signin"; // {state, verifier, back}, kept across the redirect
const NAME = "broker.personName"; // who signed in, for display

// The broker's OIDC settings for the dashboard, or null (then keys only).
export async function oidcConfig() {
  try {
    const res = await fetch("/auth/config", { cache: "no-store", headers: { accept: "application/json" } });
    if (!res.ok) return null;
    const body = await res.json();
    const oidc = body?.oidc;
    return oidc && oidc.issuer && oidc.client_id ? oidc : null;
  } catch {
    return null;
  }
}

async function discover(issuer) {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  let res;
  try {
    res = await fetch(url, { cache: "no-store", headers: { accept: "application/json" } });
  } catch {
    throw new Error("the sign-in provider could not be reached");
  }
  if (!res.ok) throw new Error(`the sign-in provider's configuration could not be read (HTTP ${res.status})`);
  const meta = await res.json();
  if (!meta.authorization_endpoint || !meta.token_endpoint) {
    throw new Error("the sign-in provider's configuration names no authorization or token endpoint");
  }
  return meta;
}

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function randomText(n) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function challengeFor(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

// Where the provider sends the browser back: this page, without query or fragment.
export function redirectUri() {
  return `${location.origin}/`;
}

// Leaves for the provider's login page; the page comes back with ?code=&state=.
export async function signIn(config) {
  const meta = await discover(config.issuer);
  const state = randomText(24);
  const verifier = randomText(48); // 64 characters, within RFC 7636's 43..128
  sessionStorage.setItem(FLOW, JSON.stringify({ state, verifier, back: location.hash }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scope || "openid",
    state,
    code_challenge: await challengeFor(verifier),
    code_challenge_method: "S256",
  });
  // the provider issues an access token (a JWT) for the broker itself
  if (config.audience) query.set("resource", config.audience);
  location.assign(`${meta.authorization_endpoint}?${query}`);
}

// On the way back from the provider: trades the code for an access token. Resolves
// null when this page load is no return from sign-in; throws when the return is refused.
export async function completeSignIn(config) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const saved = JSON.parse(sessionStorage.getItem(FLOW) ?? "null");
  sessionStorage.removeItem(FLOW);
  // the code is single-use and the state is spent: drop them from the address bar
  history.replaceState(null, "", `${location.pathname}${saved?.back ?? location.hash}`);
  if (params.has("error")) {
    throw new Error(`the sign-in provider refused: ${params.get("error_description") || params.get("error")}`);
  }
  if (!saved || params.get("state") !== saved.state) {
    throw new Error("this sign-in answer does not match the sign-in this tab started; sign in again");
  }
  const meta = await discover(config.issuer);
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri(),
    client_id: config.client_id,
    code_verifier: saved.verifier,
  });
  let res;
  try {
    res = await fetch(meta.token_endpoint, {
      method: "POST",
      cache: "no-store",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: form,
    });
  } catch {
    throw new Error("the sign-in provider could not be reached");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok || !body.access_token) {
    throw new Error(`the sign-in provider did not issue a token: ${body.error_description || body.error || `HTTP ${res.status}`}`);
  }
  setAccessToken(body.access_token);
  const seen = { ...claims(body.id_token), ...claims(body.access_token) };
  sessionStorage.setItem(NAME, seen.email || seen.sub || "");
  return body.access_token;
}

// The token's claims, decoded for display only: the broker verifies the token, not this page.
export function claims(token) {
  if (typeof token !== "string") return null;
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const text = atob(part.replaceAll("-", "+").replaceAll("_", "/"));
    const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

// Who is signed in, in words (their email, else their subject), or null.
export function personName() {
  const token = accessToken();
  if (!token) return null;
  const c = claims(token) ?? {};
  return c.email || sessionStorage.getItem(NAME) || c.sub || "someone";
}

export function signOut() {
  setAccessToken(null);
  sessionStorage.removeItem(NAME);
}
