"""What the previous version of RedisSessionStore wrote for a session (text keys and values), frozen here
so that the tests can put such sessions in Redis, as an upgraded deployment finds them."""

from __future__ import annotations

import base64
import hashlib
import math
import struct

import redis.asyncio as aioredis

from threshold.core.models import SessionRecord


def short(digest: str) -> str:
    if len(digest) == 64:
        try:
            return base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b"=").decode()
        except ValueError:
            pass
    return "=" + digest


def _id(value: str) -> str:
    if len(value) == 32:
        try:
            return base64.urlsafe_b64encode(bytes.fromhex(value)).rstrip(b"=").decode()
        except ValueError:
            pass
    return "=" + value


def _time(at: float) -> str:
    return base64.urlsafe_b64encode(struct.pack(">d", at)).rstrip(b"=").decode()


def _agent_ref(user_agent: str) -> str:
    if not user_agent:
        return ""
    return base64.urlsafe_b64encode(hashlib.sha256(user_agent.encode()).digest()[:9]).decode()


def _clean(value: str) -> str:
    return "".join(ch for ch in value if ch not in "|;, ")[:200]


def _extras(record: SessionRecord) -> tuple[str, ...]:
    if not (record.org_id or record.connection_id or record.upstream_acr or record.upstream_amr):
        return ()
    fields = (
        record.org_id or "",
        record.connection_id or "",
        _clean(record.upstream_acr or ""),
        ",".join(_clean(a) for a in record.upstream_amr if _clean(a)),
    )
    return ("~" + ";".join(fields),)


def encode(record: SessionRecord) -> str:
    return "|".join(
        (
            _agent_ref(record.user_agent),
            _time(record.last_seen_at),
            _time(record.idle_expires_at),
            _time(record.auth_time),
            record.aal.value,
            ",".join(record.amr),
            _time(record.created_at),
            _time(record.absolute_expires_at),
            _id(record.public_id),
            _id(record.user_id),
            record.ip.replace("|", ""),
            *_extras(record),
            record.device_label,
        )
    )


def key(prefix: str, digest: str) -> str:
    return f"{prefix}s:{short(digest)}"


def index(prefix: str, user_id: str) -> str:
    return f"{prefix}us:{_id(user_id)}"


async def create(client: aioredis.Redis, prefix: str, record: SessionRecord) -> None:
    """The previous RedisSessionStore.create, command for command."""
    async with client.pipeline(transaction=True) as pipe:
        absolute_ms = math.ceil(record.absolute_expires_at * 1000)
        ref = _agent_ref(record.user_agent)
        if ref:
            agent_key = f"{prefix}ua:{ref}"
            pipe.set(agent_key, record.user_agent, nx=True, pxat=absolute_ms)
            pipe.pexpireat(agent_key, absolute_ms, gt=True)
        pipe.set(key(prefix, record.digest), encode(record), pxat=math.ceil(record.expires_at * 1000))
        user_key = index(prefix, record.user_id)
        pipe.hset(user_key, short(record.digest), "")
        pipe.pexpireat(user_key, absolute_ms, gt=True)
        pipe.pexpireat(user_key, absolute_ms, nx=True)
        await pipe.execute()
