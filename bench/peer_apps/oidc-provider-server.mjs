// panva's oidc-provider: one confidential client (client_secret_basic) with the client_credentials grant,
// issuing Ed25519-signed (JWS alg "Ed25519", RFC 9864) JWT access tokens of 5 minutes for one resource
// server, as Threshold does.
// Usage: node oidc-provider-server.mjs PORT CLIENT_ID CLIENT_SECRET  (prints "ready" once listening)
import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";

import Provider from "oidc-provider";

const [port, clientId, clientSecret] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
const issuer = `http://127.0.0.1:${port}`;
const resource = "urn:threshold-bench:api";

const signing = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      scope: "api:read",
      id_token_signed_response_alg: "Ed25519", // the only key in the set
    },
  ],
  jwks: { keys: [{ ...signing, kid: "bench-ed25519", alg: "Ed25519", use: "sig" }] },
  scopes: ["api:read"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) throw new Provider.errors.InvalidTarget();
        return {
          scope: "api:read",
          audience: resource,
          accessTokenTTL: 300,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "Ed25519" } },
        };
      },
    },
  },
  ttl: { ClientCredentials: 300 },
});
provider.proxy = false;

const server = createServer(provider.callback());
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => console.log("ready"));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
