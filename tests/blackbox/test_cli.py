"""The `threshold` command as an operator runs it: a fresh install, accounts, bad configuration, serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.blackbox.conftest import SESSION_COOKIE, Browser
from tests.conftest import STRONG_PASSWORD
from tests.support import (
    PG_USER,
    clean_env,
    create_pg_database,
    drop_pg_database,
    free_port,
    migrate,
    run_cli,
    start_server,
)

PG_PASSWORD = "hunter2-not-for-logs"  # trust authentication ignores it; it must never be printed


@pytest.fixture
def fresh_install(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """No configuration at all, in an empty working directory: the embedded default (./var)."""
    return clean_env(THRESHOLD_LOG_LEVEL="warning"), tmp_path


def test_migrate_on_a_fresh_install_creates_the_database_and_a_private_kek(
    fresh_install: tuple[dict[str, str], Path],
) -> None:
    env, cwd = fresh_install
    result = run_cli("migrate", env=env, cwd=cwd)

    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    assert (cwd / "var" / "threshold.db").is_file()
    kek = cwd / "var" / "kek"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    key = kek.read_text()

    again = run_cli("migrate", env=env, cwd=cwd)
    assert again.returncode == 0, again.stderr
    assert kek.read_text() == key  # generated once, never replaced


def test_migrate_uses_the_configured_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    result = run_cli("migrate", env=clean_env(THRESHOLD_DATA_DIR=data), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (data / "threshold.db").is_file()
    assert stat.S_IMODE((data / "kek").stat().st_mode) == 0o600
    assert not (tmp_path / "var").exists()


def test_users_create_from_stdin_then_list(fresh_install: tuple[dict[str, str], Path]) -> None:
    env, cwd = fresh_install
    migrate(env, cwd=cwd)

    created = run_cli(
        "users",
        "create",
        "--email",
        "Operator@Example.com",
        "--password-stdin",
        env=env,
        cwd=cwd,
        stdin=STRONG_PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert STRONG_PASSWORD not in created.stdout + created.stderr

    listed = run_cli("users", "list", "--json", env=env, cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    users = json.loads(listed.stdout)
    assert [(u["email"], u["disabled"]) for u in users] == [("Operator@example.com", False)]
    assert users[0]["id"] == json.loads(created.stdout)["id"]

    duplicate = run_cli(
        "users",
        "create",
        "--email",
        "operator@example.com",
        "--password-stdin",
        env=env,
        cwd=cwd,
        stdin=STRONG_PASSWORD + "\n",
    )
    assert duplicate.returncode != 0
    assert "email_unavailable" in duplicate.stderr


WEAK_PASSWORDS = [
    "short",
    "password",
    "aaaaaaaaaaaaaaaaaaaaaaa",
    "operator@example.com",
    "threshold threshold",
]


def test_weak_passwords_are_refused(fresh_install: tuple[dict[str, str], Path]) -> None:
    env, cwd = fresh_install
    migrate(env, cwd=cwd)

    accepted = []
    for password in WEAK_PASSWORDS:
        result = run_cli(
            "users",
            "create",
            "--email",
            "operator@example.com",
            "--password-stdin",
            env=env,
            cwd=cwd,
            stdin=password + "\n",
        )
        if (
            result.returncode == 0
            or not re.search(r"password_\w+", result.stderr)
            or "Traceback" in result.stderr
        ):
            accepted.append((password, result.returncode, result.stderr))

    assert accepted == []
    listed = run_cli("users", "list", "--json", env=env, cwd=cwd)
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize("command", ["migrate", "serve"])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THRESHOLD_ARGON2__MEMORY_KIB", "1024"),
        ("THRESHOLD_ISSUER", "notaurl"),
        ("THRESHOLD_DATABASE_URL", "mysql://db/threshold"),
    ],
)
def test_invalid_environment_is_refused_naming_the_setting(
    fresh_install: tuple[dict[str, str], Path], command: str, variable: str, value: str
) -> None:
    env, cwd = fresh_install
    args = [command, "--port", str(free_port())] if command == "serve" else [command]

    result = run_cli(*args, env={**env, variable: value}, cwd=cwd, timeout=30)

    assert result.returncode != 0
    assert variable in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (cwd / "var").exists()  # nothing was created on a refused configuration


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_invalid_config_file_is_refused_naming_the_setting(
    fresh_install: tuple[dict[str, str], Path], command: str
) -> None:
    env, cwd = fresh_install
    config = cwd / "threshold.toml"
    config.write_text('issuer = "https://auth.example.com"\n\n[argon2]\nmemory_kib = 1024\n')

    result = run_cli("--config", str(config), command, env=env, cwd=cwd, timeout=30)

    assert result.returncode != 0
    assert "THRESHOLD_ARGON2__MEMORY_KIB" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_missing_or_malformed_config_file_is_refused(fresh_install: tuple[dict[str, str], Path]) -> None:
    env, cwd = fresh_install
    missing = run_cli("--config", str(cwd / "nope.toml"), "migrate", env=env, cwd=cwd)
    assert missing.returncode != 0
    assert "nope.toml" in missing.stderr

    broken = cwd / "broken.toml"
    broken.write_text("issuer = \n[[[")
    malformed = run_cli("--config", str(broken), "migrate", env=env, cwd=cwd)
    assert malformed.returncode != 0
    assert "invalid configuration" in malformed.stderr, malformed.stderr
    assert "Traceback" not in malformed.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A database that was never migrated, at the default log level (info)."""
    data = tmp_path / "data"
    if request.param == "sqlite":
        yield clean_env(THRESHOLD_DATA_DIR=data), tmp_path
        return
    url = create_pg_database()
    with_password = url.replace(f"//{PG_USER}@", f"//{PG_USER}:{PG_PASSWORD}@")
    try:
        yield clean_env(THRESHOLD_DATA_DIR=data, THRESHOLD_DATABASE_URL=with_password), tmp_path
    finally:
        drop_pg_database(url)


def set_schema_revision(env: Mapping[str, str], revision: str) -> None:
    """Leave the database where an older release's `threshold migrate` would have: at `revision`."""
    statement = f"UPDATE alembic_version SET version_num = '{revision}'"
    url = env.get("THRESHOLD_DATABASE_URL")
    if url is None:
        with contextlib.closing(sqlite3.connect(Path(env["THRESHOLD_DATA_DIR"]) / "threshold.db")) as db:
            db.execute(statement)
            db.commit()
        return

    async def execute() -> None:
        import asyncpg

        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(execute())


def database_named_in(env: Mapping[str, str]) -> str:
    url = env.get("THRESHOLD_DATABASE_URL")
    return url.rsplit("/", 1)[1] if url else str(Path(env["THRESHOLD_DATA_DIR"]) / "threshold.db")


def refusal_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a command that needs the schema prints before doing anything."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    assert PG_PASSWORD not in result.stderr
    assert "run `threshold migrate` first" in lines[0], lines[0]
    return lines[0]


def serve(env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("serve", "--port", str(free_port()), "--workers", "2", env=env, cwd=cwd, timeout=60)


def test_serve_refuses_an_unmigrated_database_in_one_line(unmigrated: tuple[dict[str, str], Path]) -> None:
    env, cwd = unmigrated

    line = refusal_line(serve(env, cwd))

    assert line.startswith("threshold: the database at "), line
    assert database_named_in(env) in line and "has no schema" in line
    assert not (cwd / "data").exists()  # nothing was created: no key file, no empty database


def test_serve_refuses_a_database_an_older_release_migrated(unmigrated: tuple[dict[str, str], Path]) -> None:
    env, cwd = unmigrated
    migrate(env, cwd=cwd)
    set_schema_revision(env, "0001")

    line = refusal_line(serve(env, cwd))

    assert database_named_in(env) in line
    assert "old schema (revision 0001, expected " in line, line


def test_commands_refuse_an_unmigrated_database_in_one_line(unmigrated: tuple[dict[str, str], Path]) -> None:
    env, cwd = unmigrated
    for args in (
        ["users", "list"],
        ["users", "create", "--email", "operator@example.com", "--password-stdin"],
        ["users", "disable", "operator@example.com"],
        ["clients", "list", "--json"],
        ["clients", "create", "--name", "svc", "--grant-type", "client_credentials", "--json"],
        ["clients", "update", "some-client", "--name", "svc"],
        ["keys", "list"],
    ):
        result = run_cli(*args, env=env, cwd=cwd, stdin=STRONG_PASSWORD + "\n")
        assert "has no schema" in refusal_line(result), args


def test_serve_with_two_workers_on_sqlite(tmp_path: Path, http: httpx.Client) -> None:
    env = clean_env(THRESHOLD_DATA_DIR=tmp_path / "data", THRESHOLD_LOG_LEVEL="info")
    migrate(env, cwd=tmp_path)
    server = start_server(env, tmp_path, workers=2)
    try:
        deadline = time.monotonic() + 30
        while server.output().count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = set(re.findall(r"Started server process \[(\d+)\]", server.output()))
        assert len(workers) == 2, server.output()
        assert all(Path(f"/proc/{pid}").exists() for pid in workers)

        # A session made through one connection holds on fresh connections, whichever worker answers.
        browser = Browser(http)
        signed_up = browser.signup(server, "two.workers@example.com")
        assert signed_up.status_code == 201, signed_up.text
        for _ in range(20):
            with httpx.Client(timeout=10) as fresh:
                response = Browser(fresh, cookies=dict(browser.cookies)).get(server, "/api/v1/session")
                assert response.status_code == 200, response.text
        token = browser.session or ""
        assert browser.post(server, "/api/v1/logout").status_code == 204
        for _ in range(10):
            with httpx.Client(timeout=10) as fresh:
                copied = Browser(fresh, cookies={SESSION_COOKIE: token})
                assert copied.get(server, "/api/v1/session").status_code == 401
    finally:
        server.stop()
    assert server.process.returncode is not None


# --- clients update ---------------------------------------------------------------------------------

CALLBACK = "https://app.example/callback"


def cli_json(env: Mapping[str, str], cwd: Path, *args: str) -> dict[str, object]:
    result = run_cli(*args, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    body: dict[str, object] = json.loads(result.stdout)
    return body


def listed_client(env: Mapping[str, str], cwd: Path, client_id: str) -> dict[str, object]:
    result = run_cli("clients", "list", "--json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return next(c for c in json.loads(result.stdout) if c["client_id"] == client_id)


def test_clients_update_replaces_adds_and_removes_uris(fresh_install: tuple[dict[str, str], Path]) -> None:
    env, cwd = fresh_install
    migrate(env, cwd=cwd)
    created = cli_json(
        env,
        cwd,
        *("clients", "create", "--name", "Web app", "--json"),
        *("--redirect-uri", "https://app.example/calback"),  # the typo an operator fixes
        *("--post-logout-redirect-uri", "https://app.example/bye"),
    )
    client_id = str(created["client_id"])

    fixed = cli_json(env, cwd, "clients", "update", client_id, "--redirect-uri", CALLBACK, "--json")
    assert fixed["client_id"] == client_id and fixed["redirect_uris"] == [CALLBACK]
    assert "client_secret" not in fixed

    edited = cli_json(
        env,
        cwd,
        *("clients", "update", client_id, "--json", "--name", "Web App", "--first-party"),
        *("--add-redirect-uri", "http://127.0.0.1:8080/cb"),
        *("--add-redirect-uri", "com.example.app:/callback"),
        *("--remove-post-logout-redirect-uri", "https://app.example/bye"),
        *("--add-post-logout-redirect-uri", "https://app.example/signed-out"),
    )
    assert edited == listed_client(env, cwd, client_id)
    assert edited["name"] == "Web App" and edited["first_party"] is True
    assert edited["redirect_uris"] == [CALLBACK, "http://127.0.0.1:8080/cb", "com.example.app:/callback"]
    assert edited["post_logout_redirect_uris"] == ["https://app.example/signed-out"]
    changed = {"client_secret", "name", "first_party", "redirect_uris", "post_logout_redirect_uris"}
    assert {k: v for k, v in edited.items() if k not in changed} == {
        k: v for k, v in created.items() if k not in changed
    }

    plain = run_cli(
        *("clients", "update", client_id, "--remove-redirect-uri", "http://127.0.0.1:8080/cb"),
        "--no-first-party",
        env=env,
        cwd=cwd,
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == f"updated client {client_id}"
    after = listed_client(env, cwd, client_id)
    assert after["redirect_uris"] == [CALLBACK, "com.example.app:/callback"]
    assert after["first_party"] is False


def test_clients_update_refuses_what_create_refuses_and_changes_nothing(
    fresh_install: tuple[dict[str, str], Path],
) -> None:
    env, cwd = fresh_install
    migrate(env, cwd=cwd)
    client_id = str(
        cli_json(env, cwd, "clients", "create", "--name", "Web app", "--redirect-uri", CALLBACK, "--json")[
            "client_id"
        ]
    )
    before = listed_client(env, cwd, client_id)

    for args, message in (
        (["--redirect-uri", "http://app.example/cb"], "http redirect URIs are allowed only on loopback"),
        (["--add-redirect-uri", "javascript:alert(1)"], "Invalid redirect URI: javascript:alert(1)"),
        (["--add-redirect-uri", "https://app.example/cb#x"], "Invalid redirect URI"),
        (["--add-post-logout-redirect-uri", "/signed-out"], "Invalid redirect URI"),
        (["--remove-redirect-uri", CALLBACK], "needs at least one redirect URI"),
        (["--remove-redirect-uri", "https://app.example/other"], "is not a registered redirect URI"),
        (["--redirect-uri", CALLBACK, "--add-redirect-uri", "https://app.example/2"], "not both"),
        (["--name", ""], "name is required"),
        (["--rotate-secret", "--redirect-uri", "http://app.example/cb"], "loopback"),
    ):
        result = run_cli("clients", "update", client_id, *args, "--json", env=env, cwd=cwd)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stdout == "", args
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr, (args, result.stderr)
    for uri in ("http://app.example/cb", "javascript:alert(1)", "https://app.example/cb#x"):
        create = run_cli("clients", "create", "--name", "Same rules", "--redirect-uri", uri, env=env, cwd=cwd)
        assert create.returncode != 0, uri

    assert listed_client(env, cwd, client_id) == before
    unknown = run_cli("clients", "update", "no-such-client", "--name", "x", env=env, cwd=cwd)
    assert unknown.returncode == 1 and "no client no-such-client" in unknown.stderr


def test_clients_update_rotate_secret_takes_effect_on_a_running_server_at_once(
    tmp_path: Path, http: httpx.Client
) -> None:
    env = clean_env(THRESHOLD_DATA_DIR=tmp_path / "data", THRESHOLD_LOG_LEVEL="warning")
    migrate(env, cwd=tmp_path)
    created = cli_json(
        env, tmp_path, "clients", "create", "--name", "batch", "--grant-type", "client_credentials", "--json"
    )
    client_id, old = str(created["client_id"]), str(created["client_secret"])
    server = start_server(env, tmp_path)
    try:

        def token(secret: str) -> httpx.Response:
            return http.post(
                server.base_url + "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
            )

        assert token(old).status_code == 200  # the server now holds the client in memory
        rotated = cli_json(env, tmp_path, "clients", "update", client_id, "--rotate-secret", "--json")
        new = str(rotated["client_secret"])
        assert len(new) >= 32 and new != old
        refused = token(old)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        assert token(new).status_code == 200
        assert new not in json.dumps(listed_client(env, tmp_path, client_id))

        again = run_cli("clients", "update", client_id, "--rotate-secret", env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        shown = re.search(r"^client_secret: (\S+) ", again.stdout, re.MULTILINE)
        assert shown is not None, again.stdout
        assert token(new).status_code == 401
        assert token(shown.group(1)).status_code == 200
    finally:
        server.stop()

    public = cli_json(
        env, tmp_path, "clients", "create", "--name", "spa", "--public", "--redirect-uri", CALLBACK, "--json"
    )
    no_secret = run_cli(
        "clients", "update", str(public["client_id"]), "--rotate-secret", env=env, cwd=tmp_path
    )
    assert no_secret.returncode == 1 and no_secret.stdout == ""
    assert "authenticates with a secret" in no_secret.stderr and "Traceback" not in no_secret.stderr


def test_concurrent_admin_updates_on_a_running_server_never_bring_back_a_rotated_secret(
    tmp_path: Path, http: httpx.Client
) -> None:
    """A secret rotation and another change of the same client, sent at once to a real server: each is
    applied or refused with 409, and the secret that works afterwards is the last one handed out."""
    from concurrent.futures import ThreadPoolExecutor

    env = clean_env(THRESHOLD_DATA_DIR=tmp_path / "data", THRESHOLD_LOG_LEVEL="warning")
    migrate(env, cwd=tmp_path)
    ops = cli_json(
        env, tmp_path, "clients", "create", "--name", "ops", "--grant-type", "client_credentials",
        "--scope", "threshold:admin", "--json",
    )  # fmt: skip
    target = cli_json(
        env, tmp_path, "clients", "create", "--name", "batch", "--grant-type", "client_credentials",
        "--scope", "api:read", "--json",
    )  # fmt: skip
    client_id, secret = str(target["client_id"]), str(target["client_secret"])
    server = start_server(env, tmp_path)
    try:

        def token(client: str, key: str, scope: str) -> httpx.Response:
            return http.post(
                server.base_url + "/oauth2/token",
                data={"grant_type": "client_credentials", "scope": scope},
                auth=(client, key),
            )

        admin = token(str(ops["client_id"]), str(ops["client_secret"]), "threshold:admin").json()
        headers = {"Authorization": f"Bearer {admin['access_token']}"}
        base = f"{server.base_url}/admin/v1/clients/{client_id}"
        rotated_at_least_once = False
        with ThreadPoolExecutor(2) as pool, httpx.Client(timeout=30) as a, httpx.Client(timeout=30) as b:
            for round_ in range(8):
                rotation = pool.submit(a.post, base + "/secret", headers=headers)
                change = pool.submit(
                    b.patch, base, headers=headers, json={"logo_uri": f"https://batch.example/{round_}.png"}
                )
                rotated, changed = rotation.result(), change.result()

                assert rotated.status_code in (200, 409), rotated.text
                assert changed.status_code in (200, 409), changed.text
                if rotated.status_code == 200:
                    rotated_at_least_once = True
                    previous, secret = secret, str(rotated.json()["client_secret"])
                    assert token(client_id, previous, "api:read").status_code == 401, round_
                assert token(client_id, secret, "api:read").status_code == 200, round_
        assert rotated_at_least_once
    finally:
        server.stop()


def test_users_delete_now_erases_and_the_last_operator_is_kept(
    fresh_install: tuple[dict[str, str], Path],
) -> None:
    env, cwd = fresh_install
    migrate(env, cwd=cwd)
    for email in ("leaving@example.com", "operator@example.com"):
        made = run_cli(
            *("users", "create", "--email", email, "--password-stdin"),
            env=env,
            cwd=cwd,
            stdin=STRONG_PASSWORD + "\n",
        )
        assert made.returncode == 0, made.stderr
    assert run_cli("users", "grant-admin", "operator@example.com", env=env, cwd=cwd).returncode == 0

    refused = run_cli("users", "delete", "operator@example.com", "--now", env=env, cwd=cwd)
    assert refused.returncode != 0
    assert "last_operator" in refused.stderr

    later = run_cli("users", "delete", "leaving@example.com", env=env, cwd=cwd)
    assert later.returncode == 0, later.stderr
    assert "its data is erased at" in later.stdout
    now = run_cli("users", "delete", "leaving@example.com", "--now", env=env, cwd=cwd)
    assert now.returncode == 0, now.stderr
    assert "its data is erased" in now.stdout
    listed = json.loads(run_cli("users", "list", "--json", env=env, cwd=cwd).stdout)
    assert [u["email"] for u in listed] == ["operator@example.com"]
