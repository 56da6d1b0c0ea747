"""Offboarding figures: how fast a SCIM deactivation reaches everything, and SCIM provisioning throughput.

Two `threshold serve` processes answer as one issuer (PostgreSQL + Redis by default). An organization
with a verified domain provisions people over SCIM; five applications (confidential clients with a
back-channel logout URI, each a real endpoint checking tokens with threshold.client.BackchannelLogout)
hold tokens for every one of a person's 100 sessions. Each round deactivates one such person with a
PATCH in Microsoft Entra's shape and measures, from the PATCH's answer:

  (a) refusal: until each probed session is refused by the process it is asked on (probes alternate
      between the two processes);
  (b) introspection: until each probed access token is inactive;
  (c) logout tokens: until each of the 500 logout tokens (100 sessions x 5 applications) is received
      and verified by its application.

Then it provisions people for `--sync-seconds` as Entra's initial sync does (a userName lookup, then
the POST; several at once), and reports creations per second. Not a test: it reports figures into bench/results/offboarding-*.json and .md.

    .venv/bin/python bench/offboarding.py [--rounds 5] [--sessions 100] [--apps 5] [--sync-seconds 50]

The sync is driven by wrk (Debian package `wrk`, bench/scim_sync.lua) so that the load generator's own
CPU stays small on a machine the servers share.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # the servers, databases and receivers come from the test support

from bench.run import save_results  # noqa: E402
from tests.blackbox.oidc_support import REDIRECT_URI, HttpRP, IssuerBrowser  # noqa: E402
from tests.oidc.helpers import unverified  # noqa: E402
from tests.support import Backend, Deployment, Server, make_deployment  # noqa: E402
from tests.support.logout_app import LogoutApp  # noqa: E402

SYNC_SCRIPT = ROOT / "scim_sync.lua"
PASSWORD = "bench marks are not tests 2026"
DOMAIN = "offboarding.example"
ENTRA_DEACTIVATE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
}
LIFTED = {
    "THRESHOLD_RATE_LIMIT__LOGIN_PER_IP": "100000000",
    "THRESHOLD_RATE_LIMIT__LOGIN_PER_ACCOUNT_IP": "99",
    "THRESHOLD_RATE_LIMIT__LOGIN_PER_ACCOUNT": "99",
    "THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP": "100000",
    "THRESHOLD_ARGON2__TIME_COST": "2",
    "THRESHOLD_ARGON2__MEMORY_COST": "19456",
    "THRESHOLD_EMAIL__NOTIFY_NEW_DEVICE": "false",
}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p99_ms": round(percentile(values, 99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else float("nan"),
        "mean_ms": round(statistics.fmean(values) * 1000, 1) if values else float("nan"),
    }


def cli_json(deployment: Deployment, *args: str) -> Any:
    result = deployment.cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Offboarding:
    def __init__(self, deployment: Deployment, a: Server, b: Server, apps: int) -> None:
        self.deployment, self.a, self.b = deployment, a, b
        self.http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64))
        org = cli_json(deployment, "orgs", "create", "--name", "Offboarding Inc")
        cli_json(deployment, "orgs", "domains", "add", org["slug"], DOMAIN)
        cli_json(deployment, "orgs", "domains", "verify", org["slug"], DOMAIN, "--trust")
        token = cli_json(deployment, "orgs", "scim-token", org["slug"], "--name", "bench")
        self.scim_base = a.base_url + "/scim/v2"  # (the CLI names the configured issuer)
        self.scim_headers = {
            "Authorization": f"Bearer {token['token']}",
            "Content-Type": "application/scim+json",
        }
        jwks = self.http.get(a.base_url + "/oauth2/jwks").json()
        self.apps: list[tuple[LogoutApp, HttpRP]] = []
        for _ in range(apps):
            app = LogoutApp(issuer=a.base_url).start()
            rp = HttpRP.create(
                deployment,
                self.http,
                "--redirect-uri",
                REDIRECT_URI,
                "--first-party",
                "--backchannel-logout-uri",
                app.uri,
            )
            app.configure(client_id=rp.client_id, jwks=jwks)
            self.apps.append((app, rp))

    def close(self) -> None:
        for app, _ in self.apps:
            app.stop()
        self.http.close()

    def provision(self, email: str) -> str:
        response = self.http.post(
            f"{self.scim_base}/Users",
            headers=self.scim_headers,
            json=scim_user(email),
        )
        assert response.status_code == 201, response.text
        scim_id: str = response.json()["id"]
        return scim_id

    def person(self, sessions: int) -> dict[str, Any]:
        """A provisioned person with a password, `sessions` sessions (alternating processes), and
        tokens of every application under every session."""
        email = f"p-{secrets.token_hex(6)}@{DOMAIN}"
        # An account that signs in with a password, then provisioned by the organization's IdP (SCIM
        # binds the existing account at the organization's domain).
        result = self.deployment.cli(
            "users", "create", "--email", email, "--password-stdin", "--verified", stdin=PASSWORD + "\n"
        )
        assert result.returncode == 0, result.stderr
        scim_id = self.provision(email)

        def one(i: int) -> tuple[IssuerBrowser, Server, list[dict[str, Any]]]:
            server = (self.a, self.b)[i % 2]
            browser = IssuerBrowser(self.http, origin=self.a.base_url)
            response = browser.login(server, email, PASSWORD)
            assert response.status_code == 200, response.text
            tokens = [rp.tokens(browser, server) for _, rp in self.apps]
            return browser, server, tokens

        with ThreadPoolExecutor(8) as pool:
            signed_in = list(pool.map(one, range(sessions)))
        return {"email": email, "scim_id": scim_id, "sessions": signed_in}

    def round(self, sessions: int, probes: int) -> dict[str, list[float]]:
        person = self.person(sessions)
        sids = {unverified(tokens[0]["id_token"])[1]["sid"] for _, _, tokens in person["sessions"]}
        for app, _ in self.apps:
            app.received.clear()
        probed = person["sessions"][:: max(1, sessions // probes)][:probes]
        response = self.http.patch(
            f"{self.scim_base}/Users/{person['scim_id']}", headers=self.scim_headers, json=ENTRA_DEACTIVATE
        )
        answered = time.perf_counter()
        assert response.status_code in (200, 204), (response.status_code, response.text)
        refusal: list[float] = []
        introspection: list[float] = []

        def watch_session(item: tuple[int, tuple[IssuerBrowser, Server, list[dict[str, Any]]]]) -> None:
            i, (browser, _, tokens) = item
            server = (self.a, self.b)[(i + 1) % 2]  # the other process than the one it signed in on
            while browser.get(server, "/api/v1/session").status_code != 401:
                assert time.perf_counter() - answered < 30
            refusal.append(time.perf_counter() - answered)
            _, rp = self.apps[i % len(self.apps)]
            token = tokens[i % len(self.apps)]["access_token"]
            while rp.post(server, "/oauth2/introspect", {"token": token}).json().get("active"):
                assert time.perf_counter() - answered < 30
            introspection.append(time.perf_counter() - answered)

        with ThreadPoolExecutor(len(probed)) as pool:
            list(pool.map(watch_session, enumerate(probed)))
        delivered: list[float] = []
        for app, _ in self.apps:
            app.wait_for_sids(sids, timeout=60)
            delivered += [r.at - answered for r in app.received if r.event.sid in sids]
            assert not app.refused, app.refused
        return {"refusal": refusal, "introspection": introspection, "logout_token": delivered}

    def throughput(self, seconds: int, concurrency: int) -> dict[str, float]:
        """An Entra-shaped initial sync for `seconds`: wrk (bench/scim_sync.lua) against each process,
        `concurrency` connections in all, each person looked up by userName and then created."""
        runs = []
        for index, server in enumerate((self.a, self.b) if self.b is not self.a else (self.a,)):
            url = self.scim_base.replace(self.a.base_url, server.base_url) + "/Users"
            command = [
                "wrk",
                "-t1",
                f"-c{max(1, concurrency // 2 if self.b is not self.a else concurrency)}",
                f"-d{seconds}s",
                "--timeout=10s",
                "-s",
                str(SYNC_SCRIPT),
                "-H",
                f"Authorization: {self.scim_headers['Authorization']}",
                "-H",
                "Content-Type: application/scim+json",
                url,
                "--",
                f"sync{index}-{secrets.token_hex(3)}",
                DOMAIN,
            ]
            runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
        created = failed = 0
        for run in runs:
            output, _ = run.communicate(timeout=seconds + 60)
            match = re.search(r"created (\d+) failed (\d+)", output)
            assert run.returncode == 0 and match, output
            created, failed = created + int(match.group(1)), failed + int(match.group(2))
        assert failed == 0, f"{failed} SCIM requests failed"
        return {"users": created, "seconds": seconds, "per_second": round(created / seconds, 1)}


def scim_user(email: str) -> dict[str, Any]:
    local = email.split("@")[0]
    return {
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ],
        "externalId": secrets.token_hex(8),
        "userName": email,
        "active": True,
        "displayName": local,
        "emails": [{"primary": True, "type": "work", "value": email}],
        "name": {"formatted": local, "familyName": "Bench", "givenName": local},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Bench"},
    }


@contextmanager
def deployed(backend: Backend, directory: Path) -> Iterator[tuple[Deployment, Server, Server]]:
    with make_deployment(directory, backend, **LIFTED) as deployment:
        a = deployment.start()
        b = deployment.start(issuer=a.url) if backend != "sqlite" else a
        yield deployment, a, b


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backend", default="postgres+redis", choices=["postgres+redis", "postgres", "sqlite"]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--apps", type=int, default=5)
    parser.add_argument("--probes", type=int, default=20, help="sessions watched per round for (a) and (b)")
    parser.add_argument(
        "--sync-seconds", type=int, default=50, help="length of the SCIM initial sync (0: none)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    if args.sync_seconds and not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk (or --sync-seconds 0)")

    import tempfile

    figures: dict[str, Any] = {"backend": args.backend, "sessions": args.sessions, "apps": args.apps}
    with (
        tempfile.TemporaryDirectory(prefix="threshold-offboarding-") as tmp,
        deployed(args.backend, Path(tmp)) as (deployment, a, b),
    ):
        bench = Offboarding(deployment, a, b, args.apps)
        try:
            samples: dict[str, list[float]] = {"refusal": [], "introspection": [], "logout_token": []}
            for n in range(args.rounds):
                got = bench.round(args.sessions, args.probes)
                for key, values in got.items():
                    samples[key] += values
                print(
                    f"round {n + 1}: refusal p99 {percentile(got['refusal'], 99) * 1000:.0f} ms, "
                    f"introspection p99 {percentile(got['introspection'], 99) * 1000:.0f} ms, "
                    f"{len(got['logout_token'])} logout tokens, last after "
                    f"{max(got['logout_token']) * 1000:.0f} ms",
                    flush=True,
                )
            figures["after_scim_deactivate"] = {k: summary(v) for k, v in samples.items()}
            if args.sync_seconds:
                figures["scim_creates"] = bench.throughput(args.sync_seconds, args.concurrency)
                print(f"SCIM creates: {figures['scim_creates']}", flush=True)
        finally:
            bench.close()
    lines = [
        f"# Offboarding ({args.backend}, two processes; {args.sessions} sessions x {args.apps} applications)",
        "",
        "| from the SCIM deactivate answer to | n | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    labels = {
        "refusal": "(a) the session refused on the other process",
        "introspection": "(b) introspection inactive",
        "logout_token": "(c) the logout token received and verified",
    }
    for key, label in labels.items():
        s = figures["after_scim_deactivate"][key]
        lines.append(f"| {label} | {s['n']} | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} |")
    if "scim_creates" in figures:
        c = figures["scim_creates"]
        lines += [
            "",
            f"SCIM initial sync (Entra's shape: GET filter then POST per person, {args.concurrency} "
            f"connections, wrk): {c['users']} users created in {c['seconds']} s, **{c['per_second']}/s**",
        ]
    save_results("offboarding", figures, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
