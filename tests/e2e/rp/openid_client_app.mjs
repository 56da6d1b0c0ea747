// A small web application that signs its users in with Threshold through panva's openid-client (v6).
//
// Configured with the library's defaults: discovery, the client id and secret from `threshold clients
// create` (so openid-client authenticates with its default, client_secret_post), its default ID token
// checks, PKCE S256 (Threshold requires it of every client), state and nonce. The one execute option,
// allowInsecureRequests, is there because the test provider speaks plain http on loopback.
//
// Environment: RP_ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET, RP_BASE_URL (http://127.0.0.1:<port>), RP_PORT.
// Routes: / (who is signed in, or a "Sign in" link), /login, /callback, /logout (RP-initiated logout).
//
// openid-client is installed once for the repository's Node tests, in tests/interop/node (package.json and
// lock; `npm ci --prefix tests/interop/node`). An ES module resolves bare imports from its own folder, so
// this file loads the package from there explicitly instead of keeping a second lock file here.
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const interop = createRequire(new URL('../../interop/node/package.json', import.meta.url))
const client = await import(pathToFileURL(interop.resolve('openid-client')).href)

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const baseUrl = env('RP_BASE_URL').replace(/\/+$/, '')
const port = Number(env('RP_PORT'))

const config = await client.discovery(
  new URL(env('RP_ISSUER')),
  env('RP_CLIENT_ID'),
  env('RP_CLIENT_SECRET'),
  undefined,
  { execute: [client.allowInsecureRequests] },
)

const SESSION_COOKIE = 'rp_session'
const sessions = new Map()

function sessionOf(request, response) {
  const cookies = Object.fromEntries(
    (request.headers.cookie || '')
      .split(';')
      .map((pair) => pair.trim().split('='))
      .filter(([name]) => name),
  )
  let id = cookies[SESSION_COOKIE]
  if (!id || !sessions.has(id)) {
    id = randomBytes(32).toString('base64url')
    sessions.set(id, {})
    response.setHeader('set-cookie', `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`)
  }
  return sessions.get(id)
}

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])

function page(response, body, status = 200) {
  response.writeHead(status, { 'content-type': 'text/html; charset=utf-8' })
  response.end(
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>Example app (openid-client)</title>' +
      `<h1>Example app (openid-client)</h1>${body}</html>`,
  )
}

function redirect(response, location, status = 302) {
  response.writeHead(status, { location })
  response.end()
}

async function home(url, session, response) {
  let notice = ''
  const state = url.searchParams.get('state')
  if (state !== null) {
    // back from the provider's end_session_endpoint
    notice =
      state === session.logoutState
        ? '<p role="status" id="notice">You are signed out.</p>'
        : '<p role="alert" id="notice">Sign-out answer refused: state mismatch</p>'
    delete session.logoutState
  }
  if (session.user) {
    page(response, `${notice}<p id="status">Signed in as ${escape(session.user.email)}</p><a href="/logout">Sign out</a>`)
  } else {
    page(response, `${notice}<p id="status">Not signed in.</p><a href="/login">Sign in</a>`)
  }
}

async function login(url, session, response) {
  const codeVerifier = client.randomPKCECodeVerifier()
  const pending = { codeVerifier, state: client.randomState(), nonce: client.randomNonce() }
  session.pending = pending
  const parameters = {
    redirect_uri: `${baseUrl}/callback`,
    scope: 'openid email',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state: pending.state,
    nonce: pending.nonce,
  }
  // the application's own language choice, as OIDC lets it ask for the provider's pages
  if (url.searchParams.get('ui_locales')) parameters.ui_locales = url.searchParams.get('ui_locales')
  const target = client.buildAuthorizationUrl(config, parameters)
  redirect(response, target.href)
}

async function callback(url, session, response) {
  const pending = session.pending || {}
  delete session.pending
  try {
    const tokens = await client.authorizationCodeGrant(config, url, {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    })
    const claims = { ...tokens.claims() }
    if (!claims.email) Object.assign(claims, await client.fetchUserInfo(config, tokens.access_token, claims.sub))
    session.user = { sub: claims.sub, email: claims.email }
    session.idToken = tokens.id_token
    redirect(response, '/', 303)
  } catch (error) {
    // shown on the page: the test reports what the library refused
    const code = error?.error || error?.code || error?.name || 'error'
    const cause = error?.cause instanceof Error || typeof error?.cause !== 'object' ? error?.cause : JSON.stringify(error.cause)
    const detail = [error?.name, error?.code, error?.status, error?.message, error?.error_description, cause]
      .filter(Boolean)
      .join(': ')
    page(
      response,
      `<p>Sign-in failed.</p><p id="error">${escape(code)}</p><p id="detail">${escape(detail)}</p><a href="/login">Sign in</a>`,
      error instanceof client.AuthorizationResponseError ? 400 : 502,
    )
  }
}

async function logout(session, response) {
  const idToken = session.idToken
  delete session.user
  delete session.idToken
  session.logoutState = client.randomState()
  const parameters = { post_logout_redirect_uri: `${baseUrl}/`, state: session.logoutState }
  if (idToken) parameters.id_token_hint = idToken
  redirect(response, client.buildEndSessionUrl(config, parameters).href)
}

const server = http.createServer(async (request, response) => {
  try {
    const url = new URL(request.url, baseUrl)
    const session = sessionOf(request, response)
    if (request.method !== 'GET') return page(response, '<p>Method not allowed.</p>', 405)
    switch (url.pathname) {
      case '/':
        return await home(url, session, response)
      case '/login':
        return await login(url, session, response)
      case '/callback':
        return await callback(url, session, response)
      case '/logout':
        return await logout(session, response)
      case '/favicon.ico': // keeps the browser's console free of a 404
        response.writeHead(204)
        return response.end()
      default:
        return page(response, '<p>Not found.</p>', 404)
    }
  } catch (error) {
    console.error(error)
    if (!response.headersSent) page(response, `<p id="error">${escape(error?.message || error)}</p>`, 500)
  }
})

server.listen(port, '127.0.0.1', () => console.log(`listening on ${baseUrl}`))
