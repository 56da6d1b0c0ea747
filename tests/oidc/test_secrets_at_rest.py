"""DESIGN principle 2: secrets are never stored in a usable form.

Session ids, refresh tokens, authorization codes, client secrets and emailed reset links are stored only
as digests; TOTP secrets and private signing keys are encrypted with the key-encryption key; the bodies of
delivered mail (which carry live links) are not kept. The test collects every secret a real flow hands
out, then reads every column of every table and looks for each one.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from tests.oidc.helpers import OP
from threshold.adapters.sql.schema import metadata
from threshold.core.crypto import SecretBox
from threshold.oidc.keys import PURPOSE


async def _database_text(op: OP, *, skip: frozenset[str] = frozenset()) -> str:
    dump: list[str] = []
    async with op.services.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in skip:
                continue
            for row in (await conn.execute(select(table))).all():
                dump.append(" ".join(str(value) for value in row))
    return "\n".join(dump)


async def test_no_secret_is_stored_in_a_usable_form(op: OP) -> None:
    account = await op.sign_up()
    rp = await op.register()
    assert rp.secret
    tokens = await op.tokens(rp)
    unused_code, _, _ = await op.code(rp)
    await op.browser_csrf()
    totp = await op.browser.post("/api/v1/mfa/totp/setup")
    assert totp.status_code == 200, totp.text
    reset = await op.rp.post("/api/v1/password/reset/request", json={"email": account["user"]["email"]})
    assert reset.status_code == 202
    await op.services.email.drain()
    queued = await op.services.mail_queue.recent()
    reset_mail = next(m for m in queued if "/reset-password" in m.text_body)
    match = re.search(r"token=([\w-]+)", reset_mail.text_body)
    assert match
    reset_token = match.group(1)

    secrets = {
        "session id": op.session_cookie(),
        "client secret": rp.secret,
        "refresh token": tokens.refresh,
        "authorization code": unused_code,
        "TOTP secret": totp.json()["secret"],
        "reset token": reset_token,
    }
    box = SecretBox(op.services.kek)
    keys = await op.provider.keys.keys()
    assert keys
    for key in keys:
        private = json.loads(box.open(key.private_jwk, purpose=PURPOSE))
        secrets[f"private key {key.kid}"] = private["d"]

    stored = await _database_text(op, skip=frozenset({"mail_queue"}))
    assert [name for name, value in secrets.items() if value in stored] == []

    # The queued message holds the link until it is sent; after delivery its body is gone.
    assert await op.services.mail_worker.deliver_due() >= 1
    assert reset_token not in await _database_text(op)
