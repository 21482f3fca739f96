// A relying party ("the stock site") written with openid-client, the certified OpenID Connect
// library, knowing nothing of Tobira but its issuer URL and its client credentials. e2e/test_oidc_rp.py
// starts it beside a live `tobira serve` and drives the browser through it.
//
//   ISSUER=http://localhost:8000 CLIENT_ID=... CLIENT_SECRET=... PORT=9000 node rp.mjs
//
// GET /login[?acr=phr]  -> to Tobira's authorization endpoint (code flow, PKCE S256, state, nonce)
// GET /cb               -> the code exchanged (iss, state, nonce, ID token checked by openid-client),
//                          userinfo fetched; the result shown as JSON in <pre id="result">
// GET /refresh          -> a refresh token grant; the new claims
// POST /backchannel     -> a back-channel logout token, checked with jose against Tobira's JWKS
// GET /state            -> everything seen so far, as JSON (for the test)
import http from "node:http";
import * as client from "openid-client";
import * as jose from "jose";

const { ISSUER, CLIENT_ID, CLIENT_SECRET, PORT } = process.env;
const base = `http://localhost:${PORT}`;
const redirectUri = `${base}/cb`;
const config = await client.discovery(new URL(ISSUER), CLIENT_ID, CLIENT_SECRET, undefined, {
  execute: [client.allowInsecureRequests], // http://localhost in the test only
});
const jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
const pending = new Map(); // state -> { verifier, nonce }
const state = { logins: [], refreshes: [], logouts: [], errors: [] };
let refreshToken = null;

function send(res, status, body, type = "application/json") {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

async function login(url, res) {
  const verifier = client.randomPKCECodeVerifier();
  const expected = { verifier, nonce: client.randomNonce() };
  const st = client.randomState();
  pending.set(st, expected);
  const params = {
    redirect_uri: redirectUri, scope: "openid profile email tobira offline_access", state: st,
    nonce: expected.nonce, code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  };
  if (url.searchParams.get("acr")) params.acr_values = url.searchParams.get("acr");
  res.writeHead(302, { location: client.buildAuthorizationUrl(config, params).href });
  res.end();
}

async function callback(url, res) {
  const expected = pending.get(url.searchParams.get("state"));
  if (!expected) return send(res, 400, { error: "unknown state" });
  pending.delete(url.searchParams.get("state"));
  const tokens = await client.authorizationCodeGrant(config, new URL(url.href), {
    pkceCodeVerifier: expected.verifier, expectedState: url.searchParams.get("state"), expectedNonce: expected.nonce,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  refreshToken = tokens.refresh_token ?? null;
  const result = { claims, userinfo, has_refresh_token: refreshToken !== null };
  state.logins.push(result);
  send(res, 200, `<!doctype html><title>Stock site</title><h1>Signed in</h1><pre id="result">${
    JSON.stringify(result).replace(/</g, "\\u003c")}</pre>`, "text/html; charset=utf-8");
}

async function refresh(res) {
  const tokens = await client.refreshTokenGrant(config, refreshToken);
  refreshToken = tokens.refresh_token ?? refreshToken;
  const result = { claims: tokens.claims() ?? null, rotated: Boolean(tokens.refresh_token) };
  state.refreshes.push(result);
  send(res, 200, result);
}

async function backchannel(req, res) {
  let body = "";
  for await (const chunk of req) body += chunk;
  const token = new URLSearchParams(body).get("logout_token");
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
    issuer: config.serverMetadata().issuer, audience: CLIENT_ID, typ: "logout+jwt",
  });
  if (!payload.events?.["http://schemas.openid.net/event/backchannel-logout"] || payload.nonce !== undefined) {
    throw new Error("not a logout token");
  }
  state.logouts.push({ payload, alg: protectedHeader.alg });
  send(res, 200, {});
}

http.createServer(async (req, res) => {
  const url = new URL(req.url, base);
  try {
    if (url.pathname === "/login") return await login(url, res);
    if (url.pathname === "/cb") return await callback(url, res);
    if (url.pathname === "/refresh") return await refresh(res);
    if (url.pathname === "/backchannel" && req.method === "POST") return await backchannel(req, res);
    if (url.pathname === "/state") return send(res, 200, state);
    send(res, 404, { error: "not found" });
  } catch (err) {
    state.errors.push({ path: url.pathname, error: String(err), code: err.code ?? null, cause: String(err.cause ?? "") });
    send(res, 400, { error: String(err), oauth_error: err.error ?? null }); // err.error: the OAuth error code
  }
}).listen(Number(PORT), "127.0.0.1", () => console.log(`rp listening on ${base}`));
