// A real OpenID provider for the tests: oidc-provider (OpenID certified), on loopback.
//
//   node oidc.mjs <port> <config.json>
//
// config.json (written by tests/oidc.py):
//   issuer      "http://127.0.0.1:<port>"
//   audience    the broker's audience: access tokens are JWTs (RFC 9068) for it
//   jwks        {"keys": [private JWK]} the provider signs with
//   client      {"client_id", "redirect_uris"}: a public client (PKCE S256, no secret)
//   accounts    {sub: {"email", "name", "groups"}}
//   cookieKey   secret for the provider's signed cookies
//
// Sign-in is this script's own page instead of oidc-provider's development pages:
// GET /interaction/:uid is a form with a "login" field (#login) and a button (#submit);
// POSTing it signs that account in and consents to what the client asked for, in one step.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const { issuer, audience, accounts } = config;
const RESOURCE_SCOPE = 'interrupts';

function account(sub) {
  const a = accounts[sub];
  if (!a) return undefined;
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: a.email,
        email_verified: true,
        name: a.name,
        groups: a.groups,
      };
    },
  };
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: config.client.client_id,
      redirect_uris: config.client.redirect_uris,
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
  ],
  jwks: config.jwks,
  cookies: { keys: [config.cookieKey] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups', RESOURCE_SCOPE],
  pkce: { required: () => true },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    Grant: 600,
    IdToken: 600,
    Interaction: 600,
    Session: 600,
  },
  // the dashboard's origin (that of its redirect URI) may call the token endpoint
  clientBasedCORS(ctx, origin, client) {
    return client.redirectUris.some((uri) => new URL(uri).origin === origin);
  },
  findAccount: async (ctx, sub) => account(sub),
  // the person's email, name and groups in the access token, as providers do
  async extraTokenClaims(ctx, token) {
    const a = accounts[token.accountId];
    if (!a) return undefined;
    return { email: a.email, email_verified: true, name: a.name, groups: a.groups };
  },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // the broker is the one resource: a client that names none gets it
      defaultResource: async () => audience,
      useGrantedResource: async () => true,
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== audience) throw new errors.InvalidTarget();
        return {
          scope: RESOURCE_SCOPE,
          audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function page(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!doctype html><html><head><title>Sign in</title></head><body>${html}</body></html>`);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    page(res, 400, '<p>This sign-in has ended; start again.</p>');
    return;
  }
  if (req.method === 'GET') {
    page(
      res,
      200,
      `<h1>Sign in to ${escape(details.params.client_id)}</h1>
<form method="post" action="/interaction/${escape(uid)}">
<label for="login">Account</label>
<input id="login" name="login" autocomplete="username" autofocus>
<button id="submit" type="submit">Sign in</button>
</form>`,
    );
    return;
  }
  const form = await readForm(req);
  const sub = form.get('login') || '';
  if (!accounts[sub]) {
    page(res, 401, `<p>No account ${escape(sub)}.</p>`);
    return;
  }
  const { params } = details;
  const grant = new provider.Grant({ accountId: sub, clientId: params.client_id });
  grant.addOIDCScope(String(params.scope || 'openid'));
  grant.addResourceScope(audience, RESOURCE_SCOPE);
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: sub }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

const callback = provider.callback();
const server = createServer((req, res) => {
  const match = /^\/interaction\/([^/?]+)$/.exec(new URL(req.url, issuer).pathname);
  if (!match) {
    callback(req, res);
    return;
  }
  interaction(req, res, match[1]).catch((err) => {
    page(res, 500, `<p>${escape(err.message)}</p>`);
  });
});
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider ready at ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
