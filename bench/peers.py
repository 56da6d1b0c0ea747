"""Threshold next to peers from the npm registry: Better Auth and panva's oidc-provider.

Same machine, same wrk, same scenario shape as bench/run.py (warm-up, then one run; median and spread
over the runs):

    sign-in            Threshold POST /api/v1/login        Better Auth POST /api/auth/sign-in/email
    get-session        Threshold GET /api/v1/session       Better Auth GET /api/auth/get-session
    client_credentials Threshold POST /oauth2/token        oidc-provider POST /token

Threshold runs as bench/run.py runs it (SQLite, one worker); the peers run on one Node process each,
installed from bench/peer_apps/package-lock.json into bench/peers/ (`make bench-peers` does it).
Servers run one at a time, never next to each other, and in turns: each run starts each server afresh,
measures its scenarios once and stops it, the order of the servers alternating from run to run. This
machine's speed drifts by 10-40 % within the hour, so a peer measured minutes after Threshold would be
measured on another machine: in turns, each run's pair is a minute apart and the drift falls on both
sides alike. The hash rate each sign-in is bound by (Argon2id for Threshold, scrypt for Better Auth) is
read on the server's core just before that server's turn. Not a test: it reports figures into
bench/results/.

    .venv/bin/python bench/peers.py [--duration 8] [--runs 5] [--connections 64]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from run import (
    PASSWORD,
    RESULTS,
    SERVER_CPUS,
    _pin,
    argon2_rate,
    argon2_rate_on_server_core,
    cookie_of,
    deployment,
    interpreter,
    scenario,
    summarize,
)
from tests.support import free_port, spawn

ROOT = Path(__file__).resolve().parent
APPS = ROOT / "peer_apps"  # committed: package.json, package-lock.json, the server scripts
PEERS = ROOT / "peers"  # gitignored: node_modules and copies of the scripts
LOGIN_CONNECTIONS = 8
SCENARIOS = ("sign-in", "get-session", "client_credentials")
JSON = {"Content-Type": "application/json"}
# a confidential client with the client_credentials grant, as oidc-provider's (its default signing: Ed25519)
CLIENT_OPTIONS = [
    *("--grant-type", "client_credentials"),
    *("--scope", "api:read"),
    *("--auth-method", "client_secret_basic"),
]


def post_script(directory: Path, name: str, body: str, content_type: str) -> str:
    """A wrk Lua script that POSTs one fixed body (headers such as Authorization come from -H)."""
    path = directory / f"{name}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )
    return str(path)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def jwt_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, or {} for an opaque token."""
    if token.count(".") != 2:
        return {}
    head = token.split(".", 1)[0]
    parsed: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return parsed


def token_shape(response: httpx.Response) -> dict[str, Any]:
    response.raise_for_status()
    body = response.json()
    header = jwt_header(body["access_token"])
    return {
        "format": "JWT" if header else "opaque",
        "alg": header.get("alg"),
        "typ": header.get("typ"),
        "expires_in": body.get("expires_in"),
        "scope": body.get("scope"),
    }


def measure(base: str, path: str, **kwargs: Any) -> dict[str, Any]:
    figures: dict[str, Any] = scenario(f"{base}{path}", **kwargs)
    print(f"  {path}: {figures['rps_median']:.0f} req/s", flush=True)
    return figures


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario's figures over the turns (each turn's figures are of one wrk run)."""
    return summarize(
        [
            {"rps": f["rps_median"], "p50_ms": f["p50_ms"], "p99_ms": f["p99_ms"], "errors": f["errors"]}
            for f in runs
        ]
    )


# --- Threshold ------------------------------------------------------------------------------------


def argon2_parameters() -> str:
    from threshold.settings import Argon2Settings

    params = Argon2Settings()
    return (
        f"Argon2id m={params.memory_kib} KiB ({params.memory_kib // 1024} MiB), t={params.time_cost}, "
        f"p={params.parallelism} (Threshold defaults; argon2-cffi in a thread pool)"
    )


def run_threshold(run: dict[str, int], work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with deployment("sqlite") as threshold:
        base = threshold.start(prefix=_pin(SERVER_CPUS)).base_url
        created = threshold.cli("clients", "create", "--name", "bench-peers", *CLIENT_OPTIONS, "--json")
        assert created.returncode == 0, created.stderr
        client = json.loads(created.stdout)
        discovery = httpx.get(f"{base}/.well-known/openid-configuration").json()
        token_path = httpx.URL(discovery["token_endpoint"]).path
        authorization = basic(client["client_id"], client["client_secret"])
        form = "grant_type=client_credentials&scope=api%3Aread"
        shape = token_shape(
            httpx.post(
                f"{base}{token_path}",
                content=form,
                headers={
                    "Authorization": authorization,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
        )

        email = f"bench.{secrets.token_hex(3)}@example.com"
        credentials = json.dumps({"email": email, "password": PASSWORD})
        response = httpx.post(f"{base}/api/v1/signup", json={"email": email, "password": PASSWORD})
        response.raise_for_status()
        cookie = cookie_of(response, "__Host-threshold_session")
        device = cookie_of(response, "__Host-threshold_device")  # a returning browser sends it
        httpx.get(f"{base}/api/v1/session", headers={"Cookie": cookie}).raise_for_status()
        httpx.post(
            f"{base}/api/v1/login", content=credentials, headers={**JSON, "Cookie": device}
        ).raise_for_status()

        print(f"Threshold on {base}", flush=True)
        results = {
            "sign-in": measure(
                base,
                "/api/v1/login",
                headers={"Cookie": device},
                script=post_script(work, "threshold-login", credentials, "application/json"),
                **{**run, "connections": LOGIN_CONNECTIONS},
            ),
            "get-session": measure(base, "/api/v1/session", headers={"Cookie": cookie}, **run),
            "client_credentials": measure(
                base,
                token_path,
                headers={"Authorization": authorization},
                script=post_script(work, "threshold-token", form, "application/x-www-form-urlencoded"),
                **run,
            ),
        }
        return results, {
            "client_credentials_token": shape,
            "client_auth": "client_secret_basic",
            "password_hash": argon2_parameters(),
            "storage": "SQLite (WAL), one uvicorn worker",
        }


# --- the Node peers -------------------------------------------------------------------------------


@contextmanager
def node_server(
    script: str, args: list[str], ready_url: str, log: Path, env: dict[str, str]
) -> Iterator[None]:
    """Start `node script args...` from bench/peers/, wait until ready_url answers 200, stop it on exit."""
    process = spawn(
        [*_pin(SERVER_CPUS), "node", script, *args],
        log=log,
        cwd=PEERS,
        env={**os.environ, "NODE_ENV": "production", **env},
    )
    try:
        process.wait_until_ready(ready_url, timeout=60, what=script)
        yield
    finally:
        process.stop()


def run_better_auth(run: dict[str, int], work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database = work / "better-auth.sqlite"
    env = {"BETTER_AUTH_SECRET": secrets.token_hex(32)}
    with node_server(
        "better-auth-server.mjs",
        [str(port), str(database)],
        f"{base}/api/auth/ok",
        work / "better-auth.log",
        env,
    ):
        email = f"bench.{secrets.token_hex(3)}@example.com"
        credentials = json.dumps({"email": email, "password": PASSWORD})
        response = httpx.post(
            f"{base}/api/auth/sign-up/email", json={"email": email, "password": PASSWORD, "name": "Bench"}
        )
        response.raise_for_status()
        token = re.search(r"better-auth\.session_token=([^;]+)", response.headers["set-cookie"])
        assert token is not None
        cookie = f"better-auth.session_token={token.group(1)}"
        session = httpx.get(f"{base}/api/auth/get-session", headers={"Cookie": cookie})
        session.raise_for_status()
        assert session.json()["user"]["email"] == email, session.text
        httpx.post(f"{base}/api/auth/sign-in/email", content=credentials, headers=JSON).raise_for_status()
        stored = subprocess.run(
            ["node", "-e", STORED_HASH, str(database)],
            cwd=PEERS,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()

        print(f"Better Auth on {base}", flush=True)
        results = {
            "sign-in": measure(
                base,
                "/api/auth/sign-in/email",
                headers={},
                script=post_script(work, "better-auth-login", credentials, "application/json"),
                **{**run, "connections": LOGIN_CONNECTIONS},
            ),
            "get-session": measure(base, "/api/auth/get-session", headers={"Cookie": cookie}, **run),
        }
    salt, key = stored.split(":")
    return results, {
        "password_hash": scrypt_parameters(),
        "stored_hash_shape": f"hex salt ({len(salt) // 2} bytes) : hex key ({len(key) // 2} bytes)",
        "storage": "SQLite through better-sqlite3 (its defaults: rollback journal), one Node process",
        "session_cookie_cache": "off (Better Auth default): every get-session reads the database",
    }


def scrypt_parameters() -> str:
    """Better Auth's scrypt cost, read from the installed @better-auth/utils (its Node implementation)."""
    source = (PEERS / "node_modules/@better-auth/utils/dist/password.node.mjs").read_text()
    found = dict(re.findall(r"\b(N|r|p|dkLen):\s*(\d+)", source))
    n, r = int(found["N"]), int(found["r"])
    return (
        f"scrypt N={n}, r={r}, p={found['p']}, {found['dkLen']}-byte key, {128 * n * r // 2**20} MiB "
        "(node:crypto, on the libuv thread pool)"
    )


# the stored password hash of the one account, to confirm the hash shape that sign-in verifies
STORED_HASH = (
    "const D = require('better-sqlite3'); const db = new D(process.argv[1], { readonly: true });"
    "console.log(db.prepare(\"select password from account where providerId = 'credential'\").get().password)"
)


def run_oidc_provider(run: dict[str, int], work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_id, secret = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(32)
    with node_server(
        "oidc-provider-server.mjs",
        [str(port), client_id, secret],
        f"{base}/.well-known/openid-configuration",
        work / "oidc-provider.log",
        {},
    ):
        discovery = httpx.get(f"{base}/.well-known/openid-configuration").json()
        token_path = httpx.URL(discovery["token_endpoint"]).path
        authorization = basic(client_id, secret)
        form = "grant_type=client_credentials&scope=api%3Aread"
        shape = token_shape(
            httpx.post(
                f"{base}{token_path}",
                content=form,
                headers={"Authorization": authorization, "Content-Type": "application/x-www-form-urlencoded"},
            )
        )
        print(f"oidc-provider on {base}", flush=True)
        results = {
            "client_credentials": measure(
                base,
                token_path,
                headers={"Authorization": authorization},
                script=post_script(work, "oidc-token", form, "application/x-www-form-urlencoded"),
                **run,
            )
        }
    return results, {
        "client_credentials_token": shape,
        "client_auth": "client_secret_basic",
        "configuration": "features.clientCredentials + resourceIndicators (defaultResource, "
        "accessTokenFormat jwt, jwt.sign.alg Ed25519, accessTokenTTL 300); in-memory adapter (its default; "
        "JWT access tokens are not stored)",
    }


# --- report ---------------------------------------------------------------------------------------


def scrypt_rate(seconds: float = 3.0, *, pinned: bool = False) -> float:
    """Better Auth's own password verifications per second, one at a time (one thread of the pool);
    `pinned`: on the server's core (SERVER_CPUS), as its sign-ins hash."""
    code = (
        "import { hashPassword, verifyPassword } from 'better-auth/crypto';"
        f"const password = {json.dumps(PASSWORD)}; const hash = await hashPassword(password);"
        "let n = 0; const t0 = performance.now();"
        f"while (performance.now() - t0 < {seconds * 1000}) "
        "{ await verifyPassword({ hash, password }); n++; }"
        "console.log(n / ((performance.now() - t0) / 1000));"
    )
    output = subprocess.run(
        [*(_pin(SERVER_CPUS) if pinned else []), "node", "--input-type=module", "-e", code],
        cwd=PEERS,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return float(output.stdout)


def versions() -> dict[str, str]:
    found = {"node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()}
    for package in ("better-auth", "better-sqlite3", "oidc-provider"):
        manifest = PEERS / "node_modules" / package / "package.json"
        found[package] = json.loads(manifest.read_text())["version"]
    return found


def table(report: dict[str, Any]) -> str:
    rows = report["scenarios"]
    v = report["versions"]
    lines = [
        f"Machine: {report['machine']}; {report['runs']} runs x {report['duration']} s after a 2 s warm-up; "
        f"{report['connections']} connections ({LOGIN_CONNECTIONS} for sign-in); the servers in turns, one "
        "at a time, each run starting each afresh (the order alternating)",
        f"Load average (1 min) before / after: {report['load_average_before']:.2f} / "
        f"{report['load_average_after']:.2f} (other work on the machine disturbs the figures)",
        f"Peers: better-auth {v['better-auth']} (better-sqlite3 {v['better-sqlite3']}), "
        f"oidc-provider {v['oidc-provider']}, Node {v['node']}",
        f"One core: Argon2id (Threshold) {report['hash_rates_one_core']['argon2id']}/s, "
        f"scrypt (Better Auth) {report['hash_rates_one_core']['scrypt']}/s",
        "",
        "| scenario | peer | Threshold req/s | peer req/s | Threshold / peer | per run | Threshold p50 / p99 ms "
        "| peer p50 / p99 ms | errors (T / peer) |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        t, p = row["threshold"], row["peer"]
        lines.append(
            f"| {name} | {row['peer_name']} | {t['rps_median']:.0f} ± {t['rps_spread']:.0f} | "
            f"{p['rps_median']:.0f} ± {p['rps_spread']:.0f} | {row['ratio']:.2f} | "
            f"{', '.join(f'{r:.2f}' for r in row['ratio_per_run'])} | "
            f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f} | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} | "
            f"{t['errors']} / {p['errors']} |"
        )
    rates, sign_in = report["hash_rates_one_core"], rows["sign-in"]
    mine, theirs = sign_in["threshold_over_argon2id_per_run"], sign_in["peer_over_scrypt_per_run"]
    per_turn = report["hash_rates_server_core_per_turn"]
    lines += [
        "",
        "± is the spread (max - min) of the runs; the ratio is of the medians; per run: each run's pair.",
        "Sign-in is bound by the password hash, and the two hashes differ in cost: sign-ins/s over one-core "
        f"hashes/s (cores kept hashing) is {sign_in['threshold']['rps_median'] / rates['argon2id']:.2f} for "
        f"Threshold and {sign_in['peer']['rps_median'] / rates['scrypt']:.2f} for Better Auth against the "
        "rates read at the start; against the rate read on the server's core just before each turn "
        f"(Argon2id {', '.join(f'{r:.1f}' for r in per_turn['argon2id'])}/s; scrypt "
        f"{', '.join(f'{r:.1f}' for r in per_turn['scrypt'])}/s), median {statistics.median(mine):.2f} "
        f"(runs {', '.join(f'{r:.2f}' for r in mine)}) for Threshold and {statistics.median(theirs):.2f} "
        f"(runs {', '.join(f'{r:.2f}' for r in theirs)}) for Better Auth.",
        "wrk gives up on a request after 10 s: those count as errors, and latencies beyond it are not seen.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    for tool in ("wrk", "node"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found")
    if not (PEERS / "node_modules" / "better-auth").is_dir():
        raise SystemExit("peers not installed: run `make bench-peers` (npm ci into bench/peers/)")
    for script in APPS.glob("*.mjs"):  # run the committed scripts, next to the installed node_modules
        shutil.copy2(script, PEERS / script.name)

    run = {"runs": args.runs, "duration": args.duration, "connections": args.connections}
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {interpreter()}",
        **run,
        "login_connections": LOGIN_CONNECTIONS,
        "load_average_before": os.getloadavg()[0],
        "versions": versions(),
        "hash_rates_one_core": {"argon2id": round(argon2_rate(), 1), "scrypt": round(scrypt_rate(), 1)},
    }
    work = Path(tempfile.mkdtemp(prefix="threshold-peers-"))
    one = {**run, "runs": 1}
    turns: dict[str, list[dict[str, Any]]] = {"threshold": [], "better-auth": [], "oidc-provider": []}
    hashes: dict[str, list[float]] = {"argon2id": [], "scrypt": []}
    configs: dict[str, dict[str, Any]] = {}

    def threshold_turn() -> None:
        hashes["argon2id"].append(argon2_rate_on_server_core())
        results, configs["threshold"] = run_threshold(one, work)
        turns["threshold"].append(results)

    def better_auth_turn() -> None:
        hashes["scrypt"].append(scrypt_rate(2.0, pinned=True))
        results, configs["better-auth"] = run_better_auth(one, work)
        turns["better-auth"].append(results)

    def oidc_provider_turn() -> None:
        results, configs["oidc-provider"] = run_oidc_provider(one, work)
        turns["oidc-provider"].append(results)

    try:
        for index in range(args.runs):
            order = [threshold_turn, better_auth_turn, oidc_provider_turn]
            for turn in order if index % 2 == 0 else reversed(order):
                print(f"run {index + 1}/{args.runs}: {turn.__name__}", flush=True)
                turn()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_average_after"] = os.getloadavg()[0]
    report["configuration"] = configs
    report["hash_rates_server_core_per_turn"] = {k: [round(r, 1) for r in v] for k, v in hashes.items()}
    peers = {"sign-in": "better-auth", "get-session": "better-auth", "client_credentials": "oidc-provider"}
    report["scenarios"] = {}
    for name in SCENARIOS:
        mine = combined([t[name] for t in turns["threshold"]])
        theirs = combined([t[name] for t in turns[peers[name]]])
        pairs = [
            t[name]["rps_median"] / max(p[name]["rps_median"], 0.01)
            for t, p in zip(turns["threshold"], turns[peers[name]], strict=True)
        ]
        report["scenarios"][name] = {
            "peer_name": peers[name],
            "threshold": mine,
            "peer": theirs,
            "ratio": round(mine["rps_median"] / max(theirs["rps_median"], 0.01), 3),
            "ratio_per_run": [round(r, 3) for r in pairs],
        }
    sign_in = report["scenarios"]["sign-in"]
    sign_in["threshold_over_argon2id_per_run"] = [
        round(t["sign-in"]["rps_median"] / h, 3)
        for t, h in zip(turns["threshold"], hashes["argon2id"], strict=True)
    ]
    sign_in["peer_over_scrypt_per_run"] = [
        round(t["sign-in"]["rps_median"] / h, 3)
        for t, h in zip(turns["better-auth"], hashes["scrypt"], strict=True)
    ]
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"peers-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(report)
    (RESULTS / "peers-latest.md").write_text(text + "\n")
    print()
    print(text)


if __name__ == "__main__":
    main()
