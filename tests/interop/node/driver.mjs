// A relying party built on panva's openid-client (v6), driven by tests/interop/test_openid_client.py.
//
// argv[2] is a JSON object: {issuer, client_id, client_secret, auth_method, redirect_uri, scope, alg}.
// Phase 1 prints one JSON line {"authorization_url": ...} and waits for the callback URL on stdin
// (the test performs the browser step itself). Phase 2 lets openid-client redeem the code (it checks
// state, iss, PKCE, the ID token's signature, iss, aud, exp, nonce and at_hash), fetches userinfo,
// refreshes, replays the rotated refresh token, and prints one JSON summary line.
// Any failure prints {"error": ...} and exits 1.
import * as client from 'openid-client'

function clientAuth(method, secret) {
  switch (method) {
    case 'client_secret_basic':
      return client.ClientSecretBasic(secret)
    case 'client_secret_post':
      return client.ClientSecretPost(secret)
    case 'none':
      return client.None()
    default:
      throw new Error(`unsupported auth_method ${method}`)
  }
}

function joseHeader(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString('utf8'))
}

function describe(error) {
  return {
    name: error?.name,
    message: error?.message,
    code: error?.code,
    error: error?.error,
    error_description: error?.error_description,
    status: error?.status,
    cause: error?.cause instanceof Error ? String(error.cause) : error?.cause,
  }
}

async function readStdin() {
  let text = ''
  process.stdin.setEncoding('utf8')
  for await (const chunk of process.stdin) text += chunk
  return text.trim()
}

async function main() {
  const options = JSON.parse(process.argv[2])
  const metadata = { id_token_signed_response_alg: options.alg }
  if (options.client_secret) metadata.client_secret = options.client_secret
  // The test server speaks plain http on loopback; everything else stays at the library's defaults.
  const config = await client.discovery(
    new URL(options.issuer),
    options.client_id,
    metadata,
    clientAuth(options.auth_method, options.client_secret),
    { execute: [client.allowInsecureRequests] },
  )

  const codeVerifier = client.randomPKCECodeVerifier()
  const nonce = client.randomNonce()
  const state = client.randomState()
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: options.redirect_uri,
    scope: options.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  })
  process.stdout.write(JSON.stringify({ authorization_url: authorizationUrl.href }) + '\n')

  const callback = new URL(await readStdin())
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  })
  const claims = tokens.claims()
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  const refreshedUserinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub)

  let reuse = null
  try {
    await client.refreshTokenGrant(config, tokens.refresh_token)
  } catch (error) {
    reuse = describe(error)
  }

  const summary = {
    issuer: config.serverMetadata().issuer,
    id_token_alg: joseHeader(tokens.id_token).alg,
    id_token_claims: claims,
    token_type: tokens.token_type,
    scope: tokens.scope,
    expires_in: tokens.expiresIn(),
    userinfo,
    refresh_token: tokens.refresh_token,
    refreshed: {
      refresh_token: refreshed.refresh_token,
      id_token_alg: refreshed.id_token ? joseHeader(refreshed.id_token).alg : null,
      id_token_claims: refreshed.claims() ?? null,
      userinfo: refreshedUserinfo,
    },
    reuse_error: reuse,
  }
  process.stdout.write(JSON.stringify(summary) + '\n')
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ error: describe(error) }) + '\n')
  process.exit(1)
})
