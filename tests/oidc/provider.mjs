// A real OpenID Connect provider (panva's oidc-provider) on loopback, for tessera's tests.
//
//   node provider.mjs                 start the provider (configured by the environment, below)
//   node provider.mjs genkey KID [ALG]  print one private JWK (RS256 default; RS*/PS*/ES256/ES384/ES512)
//
// Environment:
//   OIDC_PORT        listen on 127.0.0.1:PORT; the issuer is http://127.0.0.1:PORT (no trailing slash)
//   OIDC_CLIENTS     JSON list of client metadata objects, passed as-is to oidc-provider's `clients`
//   OIDC_JWKS_FILE   JSON file {"keys": [private JWKs]}: the signing keys (the first one's alg is the
//                    default id_token / JWT access token alg, so an ES256-only key file just works)
//   OIDC_RESOURCE    optional resource indicator (an absolute URI). A request carrying
//                    resource=<it> gets a JWT access token with aud=<it> and the request's non-OIDC scopes.
//   OIDC_RESOURCE_SCOPES  optional, space-separated extra scopes always allowed for that resource.
//
// Consent: every account is treated as having already consented. `loadExistingGrant` finds the
// session's grant for the client or makes a new one, and adds the scopes openid, offline_access,
// profile and email, the requested claims and the requested resource scopes, then saves it.
// So a login is all that a flow needs. `prompt=consent` still shows the devInteractions consent
// page (that page is needed for offline_access when a `prompt` is sent).
//
// On stdout it prints `listening <issuer>` once ready. It exits with status 0 on SIGTERM or SIGINT.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const OIDC_SCOPES = new Set(['openid', 'offline_access', 'profile', 'email', 'address', 'phone']);
const GRANTED_OIDC_SCOPES = 'openid offline_access profile email';

function genkey(kid, alg = 'RS256') {
  let pair;
  if (/^(RS|PS)(256|384|512)$/.test(alg)) {
    pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  } else if (alg === 'ES256' || alg === 'ES384' || alg === 'ES512') {
    const namedCurve = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg];
    pair = crypto.generateKeyPairSync('ec', { namedCurve });
  } else {
    throw new Error(`genkey: unsupported alg ${alg} (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or ES512)`);
  }
  return { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

function words(scope) {
  return typeof scope === 'string' ? scope.split(' ').filter(Boolean) : [];
}

if (process.argv[2] === 'genkey') {
  const [, , , kid, alg] = process.argv;
  if (!kid) fail('usage: node provider.mjs genkey KID [ALG]');
  try {
    process.stdout.write(`${JSON.stringify(genkey(kid, alg || 'RS256'))}\n`);
  } catch (err) {
    fail(err.message);
  }
  process.exit(0);
}

const port = Number.parseInt(process.env.OIDC_PORT ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('OIDC_PORT must be a port number');
const issuer = `http://127.0.0.1:${port}`;

let clients;
try {
  clients = JSON.parse(process.env.OIDC_CLIENTS ?? '[]');
} catch (err) {
  fail(`OIDC_CLIENTS is not JSON: ${err.message}`);
}
if (!Array.isArray(clients)) fail('OIDC_CLIENTS must be a JSON list');

if (!process.env.OIDC_JWKS_FILE) fail('OIDC_JWKS_FILE is required');
let jwks;
try {
  jwks = JSON.parse(fs.readFileSync(process.env.OIDC_JWKS_FILE, 'utf8'));
} catch (err) {
  fail(`cannot read OIDC_JWKS_FILE: ${err.message}`);
}
if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) fail('OIDC_JWKS_FILE must hold {"keys": [...]} with at least one key');
const defaultAlg = jwks.keys[0].alg || 'RS256';

const resource = process.env.OIDC_RESOURCE || undefined;
const resourceExtraScopes = words(process.env.OIDC_RESOURCE_SCOPES);

// The scopes a resource server accepts: the extra list plus whatever non-OIDC scopes the current
// request (or the code / device code / refresh token it redeems) asked for. The access token then
// carries the requested scopes that were granted, i.e. "the scope from the request".
function resourceScopes(ctx) {
  const sources = [ctx.oidc?.params?.scope];
  const entities = ctx.oidc?.entities ?? {};
  for (const name of ['AuthorizationCode', 'DeviceCode', 'RefreshToken']) {
    sources.push(entities[name]?.scope);
  }
  const all = new Set(resourceExtraScopes);
  for (const source of sources) {
    for (const scope of words(source)) {
      if (!OIDC_SCOPES.has(scope)) all.add(scope);
    }
  }
  return [...all].join(' ');
}

const configuration = {
  clients,
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: defaultAlg,
  },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  // Put the claims of the granted scopes (name, email...) in the ID token too, not only at userinfo.
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          name: id,
          preferred_username: id,
          email: `${id}@example.org`,
          email_verified: true,
        };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const accountId = oidc.session?.accountId ?? oidc.account?.accountId;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    if (!grant) {
      grant = new oidc.provider.Grant({ accountId, clientId: oidc.client.clientId });
    }
    grant.addOIDCScope(GRANTED_OIDC_SCOPES);
    const claims = oidc.requestParamClaims ? [...oidc.requestParamClaims] : [];
    if (claims.length) grant.addOIDCClaims(claims);
    for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
      const requested = [...(oidc.requestParamScopes ?? [])].filter((s) => server.scopes.has(s));
      if (requested.length) grant.addResourceScope(indicator, requested.join(' '));
    }
    await grant.save();
    return grant;
  },
  pkce: {
    // S256 is accepted from any client; it is required only from public clients.
    required: (ctx, client) => client.clientAuthMethod === 'none',
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No resource requested: an opaque access token usable at userinfo, as usual.
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      // A code / device code / refresh token issued for the resource redeems to a token for it.
      useGrantedResource: async () => true,
      async getResourceServerInfo(ctx, indicator) {
        if (resource && indicator === resource) {
          return {
            scope: resourceScopes(ctx),
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 600,
            jwt: { sign: { alg: defaultAlg } },
          };
        }
        throw new errors.InvalidTarget();
      },
    },
  },
  ttl: {
    AccessToken: 600,
    IdToken: 600,
    DeviceCode: 600,
  },
};

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fail(`bad configuration: ${err.stack || err}`);
}

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`server_error: ${err.stack || err}\n`);
});

const server = http.createServer(provider.callback());
server.on('error', (err) => fail(`cannot listen on 127.0.0.1:${port}: ${err.message}`));
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
