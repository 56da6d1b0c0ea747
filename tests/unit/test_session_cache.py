"""The process-local session cache: answers only while its feed is live, never re-admits a revoked entry."""

from __future__ import annotations

from dataclasses import replace

from threshold.core.models import Aal, Amr, SessionRecord, User
from threshold.core.session_cache import SessionCache


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _user(user_id: str = "u1") -> User:
    return User(
        id=user_id,
        email=f"{user_id}@example.com",
        email_normalized=f"{user_id}@example.com",
        email_verified=True,
        disabled=False,
        created_at=0.0,
    )


def _record(key: str, user_id: str = "u1") -> SessionRecord:
    return SessionRecord(
        digest=key,
        public_id="p-" + key,
        user_id=user_id,
        created_at=0.0,
        last_seen_at=0.0,
        idle_expires_at=100.0,
        absolute_expires_at=200.0,
        aal=Aal.AAL1,
        amr=(Amr.PASSWORD,),
        ip="127.0.0.1",
        user_agent="ua",
        device_label="",
    )


def _live(ticks: Ticks | None = None, **kwargs: float) -> SessionCache:
    cache = SessionCache(
        max_entries=int(kwargs.get("max_entries", 100)),
        max_age=kwargs.get("max_age", 5.0),
        monotonic=ticks or Ticks(),
    )
    cache.set_live(True)
    return cache


def test_answers_what_was_put_while_live() -> None:
    cache = _live()
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") == (_record("a"), _user())


def test_answers_nothing_until_the_feed_is_live_and_forgets_everything_when_it_drops() -> None:
    cache = SessionCache(max_entries=100, max_age=5.0)
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") is None and len(cache) == 0
    cache.set_live(True)
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") is not None
    cache.set_live(False)
    assert cache.get("a") is None and len(cache) == 0


def test_an_invalidation_during_the_store_read_keeps_the_stale_read_out() -> None:
    cache = _live()
    epoch = cache.epoch  # the check starts reading the store...
    cache.apply("s:a")  # ...a revocation of that very session arrives meanwhile...
    cache.put("a", _record("a"), _user(), epoch=epoch)  # ...and the read it made is not kept
    assert cache.get("a") is None


def test_session_and_user_messages_drop_exactly_their_entries() -> None:
    cache = _live()
    for key, user_id in (("a", "u1"), ("b", "u1"), ("c", "u2")):
        cache.put(key, _record(key, user_id), _user(user_id), epoch=cache.epoch)
    cache.apply("s:a")
    assert cache.get("a") is None and cache.get("b") is not None
    cache.apply("u:u1")
    assert cache.get("b") is None and cache.get("c") is not None
    cache.apply("garbage")  # unknown message: drop everything rather than guess
    assert len(cache) == 0


def test_entries_age_out() -> None:
    ticks = Ticks()
    cache = _live(ticks, max_age=5.0)
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    ticks.now += 4.9
    assert cache.get("a") is not None
    ticks.now += 0.2
    assert cache.get("a") is None


def test_size_is_bounded_oldest_first() -> None:
    cache = _live(max_entries=2)
    for key in ("a", "b", "c"):
        cache.put(key, _record(key), _user(), epoch=cache.epoch)
    assert len(cache) == 2
    assert cache.get("a") is None and cache.get("b") is not None and cache.get("c") is not None


def test_a_probe_reporting_a_change_empties_the_cache() -> None:
    changes = [False]
    cache = SessionCache(max_entries=10, max_age=5.0, probe=lambda: changes[0])
    assert cache.live  # a probed cache needs no listener
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") is not None
    changes[0] = True
    assert cache.get("a") is None and len(cache) == 0


def test_replacing_an_entry_keeps_the_user_index_right() -> None:
    cache = _live()
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    cache.put("a", replace(_record("a"), aal=Aal.AAL2), _user(), epoch=cache.epoch)
    cache.apply("u:u1")
    assert cache.get("a") is None and len(cache) == 0


def test_disabled_cache_keeps_nothing() -> None:
    cache = SessionCache(max_entries=0, max_age=5.0)
    cache.set_live(True)
    cache.put("a", _record("a"), _user(), epoch=cache.epoch)
    assert cache.get("a") is None
