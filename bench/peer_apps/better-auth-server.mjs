// Better Auth on plain node:http, SQLite through better-sqlite3, email + password enabled.
// Usage: node better-auth-server.mjs PORT DATABASE_FILE  (bench/peers.py starts it; prints "ready" once listening)
import { createServer } from "node:http";

import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";

const port = Number(process.argv[2]);
const file = process.argv[3];
const baseURL = `http://127.0.0.1:${port}`;

const options = {
  baseURL,
  secret: process.env.BETTER_AUTH_SECRET,
  database: new Database(file),
  emailAndPassword: { enabled: true },
  // the sign-in scenario hammers one account from one address: lift the throttle, as for Threshold
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
};

const { runMigrations } = await getMigrations(options);
await runMigrations();

const auth = betterAuth(options);
const server = createServer(toNodeHandler(auth));
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => console.log("ready"));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
