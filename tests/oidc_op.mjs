// An OpenID Connect provider for the OIDC login tests: the npm oidc-provider (OpenID
// certified) on loopback with static clients, accounts and signing keys read from a JSON file,
// and its own small login page that says which acr and amr the login reached (its development
// pages cannot). PKCE is required of every client.
//
// For the misuse tests a control address, POST /test/mode (JSON), changes what the token
// endpoint answers: {"claims": {...}} rewrites ID token claims ("exp"/"iat" as offsets from
// now when given as {"ago": seconds}), re-signed with the OP's key, or with "sign": "tamper"
// (the payload changed, the signature kept), "stray" (a key the JWKS never lists), "secret"
// (HS256 keyed with the client secret) or "none" (no signature at all).
//
// usage: node tests/oidc_op.mjs <port> <config.json>; prints "listening" once it serves.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.NODE_MODULES;
const load = (path) => import(pathToFileURL(join(modules, path)).href);
const { default: Provider } = await load('oidc-provider/lib/index.js');
const jose = await load('jose/dist/webapi/index.js');

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));
let mode = {};

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: config.keys },
  async findAccount(ctx, id) {
    const account = config.accounts[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account }) };
  },
  claims: {
    // acr, amr and auth_time come with the openid scope: no claims parameter needed
    openid: ['sub', 'acr', 'amr', 'auth_time'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  acrValues: config.acr_values,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['oidc-op-test-cookie-key'] },
  ttl: { IdToken: 300, AccessToken: 300, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600 },
});

const html = (body) => `<!doctype html><title>Test OP</title>${body}`;

async function readForm(ctx) {
  let raw = '';
  for await (const chunk of ctx.req) raw += chunk;
  return Object.fromEntries(new URLSearchParams(raw));
}

async function rewrite(idToken) {
  const [head, body, signature] = idToken.split('.');
  const payload = JSON.parse(Buffer.from(body, 'base64url'));
  const now = Math.floor(Date.now() / 1000);
  for (const [name, value] of Object.entries(mode.claims || {})) {
    payload[name] = value && typeof value === 'object' && 'ago' in value ? now - value.ago : value;
  }
  const claims = Buffer.from(JSON.stringify(payload)).toString('base64url');
  if (mode.sign === 'tamper') {
    return `${head}.${claims}.${signature}`;
  }
  if (mode.sign === 'none') {
    return `${Buffer.from('{"alg":"none"}').toString('base64url')}.${claims}.`;
  }
  if (mode.sign === 'secret') { // HS256 keyed with the client's own secret
    const secret = new TextEncoder().encode(config.clients[0].client_secret);
    return new jose.SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(secret);
  }
  const jwk = mode.sign === 'stray' ? config.stray : config.keys[0];
  const key = await jose.importJWK(jwk, jwk.alg);
  return new jose.SignJWT(payload).setProtectedHeader({ alg: jwk.alg, kid: jwk.kid }).sign(key);
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/mode' && ctx.method === 'POST') {
    let raw = '';
    for await (const chunk of ctx.req) raw += chunk;
    mode = JSON.parse(raw || '{}');
    ctx.body = { mode };
    return;
  }
  const match = ctx.path.match(/^\/interaction\/([\w-]+)$/);
  if (match) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { prompt, params } = details;
    if (ctx.method === 'GET' && prompt.name === 'login') {
      ctx.type = 'html';
      ctx.body = html(
        `<form method="post" action="/interaction/${match[1]}">` +
          '<input name="login"><input name="acr"><input name="amr"><button>Log in</button></form>',
      );
      return;
    }
    let result;
    if (prompt.name === 'login') {
      const form = await readForm(ctx);
      if (!config.accounts[form.login]) {
        ctx.status = 400;
        ctx.type = 'html';
        ctx.body = html('<p>unknown account</p>');
        return;
      }
      result = {
        login: {
          accountId: form.login,
          ...(form.acr ? { acr: form.acr } : {}),
          ...(form.amr ? { amr: form.amr.split(',') } : {}),
        },
      };
    } else {
      const grant = new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
      grant.addOIDCScope(params.scope);
      result = { consent: { grantId: await grant.save() } };
    }
    const location = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: false,
    });
    ctx.status = 303;
    ctx.redirect(location);
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.body && ctx.body.id_token && (mode.claims || mode.sign)) {
    ctx.body = { ...ctx.body, id_token: await rewrite(ctx.body.id_token) };
  }
});

provider.listen(Number(port), '127.0.0.1', () => console.log('listening'));
