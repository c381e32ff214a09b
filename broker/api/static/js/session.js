// Who the page acts as: a person signed in through the broker's OpenID provider (when
// `/auth/config` names one), or an API key. The dialogs that ask for either at a 401, and
// the header that says who is signed in.

import { accessToken, apiKey, onKeyNeeded, setApiKey } from "./api.js";
import { completeSignIn, oidcConfig, personName, signIn, signOut } from "./signin.js";

const $ = (sel) => document.querySelector(sel);
const SIGNED_OUT = "broker.signedOut"; // one-shot note across the reload after "Sign out"

export class Session {
  constructor() {
    this.oidc = null;
    this.settle = null; // resolves the pending 401 prompt
    this.listeners = [];
  }

  // Reads the broker's sign-in settings and finishes a sign-in this load returns from;
  // nothing else may call the API before this, or it would meet a 401 first.
  async start() {
    this.oidc = await oidcConfig();
    let problem = "";
    if (this.oidc) {
      try {
        await completeSignIn(this.oidc);
      } catch (err) {
        problem = `Not signed in: ${err.message}.`;
      }
    }
    this.setupKeyDialog();
    this.setupSignIn();
    onKeyNeeded((message) => this.ask(message));
    this.render();
    const note = sessionStorage.getItem(SIGNED_OUT);
    sessionStorage.removeItem(SIGNED_OUT);
    if (this.oidc && !accessToken() && !apiKey() && (problem || note)) this.showSignIn(problem || note);
  }

  // The name of the person signed in, or null with a key (or no credential).
  get person() {
    return personName();
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  render() {
    const name = this.person;
    $("#person").hidden = !name;
    $("#person-name").textContent = name ?? "";
    // the broker names a signed-in person from the token: no "Answer as"
    $("#answer-as").hidden = Boolean(name);
    $("#signin-button").hidden = !this.oidc || Boolean(name);
    $("#key-button").hidden = !apiKey();
    for (const listener of this.listeners) listener(name);
  }

  // The broker answered 401: ask for what it needs, and resolve true to retry.
  ask(message) {
    return new Promise((resolve) => {
      this.settle = resolve;
      if (accessToken()) {
        // the token expired or was revoked: back to signed out, saying so
        signOut();
        this.render();
        this.showSignIn(`Your sign-in has ended (${message || "the broker refused the token"}). Sign in again.`);
      } else if (this.oidc && !apiKey()) this.showSignIn(null);
      else this.showKey(apiKey() ? message || "This API key is not valid." : "");
    });
  }

  done() {
    this.render();
    this.settle?.(true);
    this.settle = null;
  }

  // message null keeps what the dialog already says
  showSignIn(message) {
    const dialog = $("#signin-dialog");
    $("#key-dialog").close();
    if (message !== null || !dialog.open) dialog.querySelector("[data-error]").textContent = message ?? "";
    if (!dialog.open) dialog.showModal();
    $("#signin-go").focus();
  }

  showKey(message) {
    const dialog = $("#key-dialog");
    const form = $("#key-form");
    $("#signin-dialog").close();
    form.querySelector("[data-error]").textContent = message;
    form.elements.key.value = "";
    if (!dialog.open) dialog.showModal();
    form.elements.key.focus();
  }

  setupSignIn() {
    const dialog = $("#signin-dialog");
    const go = $("#signin-go");
    go.addEventListener("click", async () => {
      go.disabled = true;
      try {
        await signIn(this.oidc); // leaves the page
      } catch (err) {
        dialog.querySelector("[data-error]").textContent = `Could not sign in: ${err.message}.`;
        go.disabled = false;
      }
    });
    $("#use-key").addEventListener("click", () => this.showKey(""));
    // without a credential nothing works; keep asking rather than show an empty page
    dialog.addEventListener("cancel", (event) => {
      if (this.settle) event.preventDefault();
    });
    $("#signin-button").addEventListener("click", () => this.showSignIn(""));
    $("#signout-button").addEventListener("click", () => {
      signOut();
      sessionStorage.setItem(SIGNED_OUT, "You signed out.");
      // nothing of what this person saw stays on the page
      location.reload();
    });
  }

  setupKeyDialog() {
    const dialog = $("#key-dialog");
    const form = $("#key-form");
    const error = form.querySelector("[data-error]");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const key = form.elements.key.value.trim();
      if (!key) return;
      setApiKey(key);
      dialog.close();
      this.done();
    });
    dialog.addEventListener("cancel", (event) => {
      if (this.settle) event.preventDefault();
    });
    $("#key-forget").addEventListener("click", () => {
      setApiKey(null);
      this.render();
      error.textContent = "The key was forgotten. Enter a key to go on.";
      form.elements.key.value = "";
    });
    $("#key-button").addEventListener("click", () => this.showKey(""));
  }
}
