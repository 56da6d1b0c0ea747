"""The session check without I/O: a process-local cache kept exact by invalidation messages.

Every write that can end or change a session, or change the user behind it, goes through
`InvalidatingSessionStore` / `InvalidatingUserRepo`, which drop the local entry and publish a message
("s:<digest>" or "u:<user id>") to every process (Redis pub/sub, PostgreSQL NOTIFY or the SQLite change
file; see the adapters). A process answers from memory only while its listener is live: when the
feed is lost the cache is emptied and every check goes to the store until the feed is back.

A lookup racing an invalidation must not re-insert what was just revoked: `epoch` counts the
invalidations seen, and an entry read from the store is kept only if no invalidation arrived while it
was being read. `max_age` bounds what a lost message could cost, `max_entries` the memory.

A revocation is answered only once every listening process has dropped the entry (`Acks`): the message
goes out in an envelope naming its sender and a number, every process that applies it answers with an
acknowledgement on the same feed, and the sender waits for those the feed says it delivered the message
to (Redis: how many subscribers; PostgreSQL: which listening connections). Without that, a process whose
feed is slower than the client (a slow link to the broker, PostgreSQL waking its listening backends after
the commit, a busy event loop) could still answer the revoked session from memory to the client's very
next request. The wait is bounded by `feed_bound`, the longest a process's cache can stay on after its
feed stopped delivering (its heartbeats: adapters/feed_heartbeat.py): once that has passed, every process
either has applied the message or answers nothing from memory. So a revocation whose acknowledgements
cannot all be heard (this process's own feed lost, a receiver that never answers) waits out the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar, cast

from threshold.core.accounts import Accounts
from threshold.core.clock import Clock
from threshold.core.models import Aal, Amr, PasswordCredential, SessionRecord, Sightings, User
from threshold.core.ports import Invalidations, SessionStore, UserRepo
from threshold.core.secrets import digest
from threshold.core.sessions import SessionService

log = logging.getLogger(__name__)

SESSION_PREFIX = "s:"
USER_PREFIX = "u:"
ITEM_PREFIX = "i:"
"""Other records read on hot paths (OAuth clients): dropped one by one, by their full key."""
ENVELOPE_PREFIX = "n:"
"""`n:<sender>:<number>:<message>`: a message whose sender waits for every receiver's acknowledgement.
A process of an earlier version does not know the prefix and empties its cache (safe)."""
ACK_PREFIX = ITEM_PREFIX + "ack:"
"""`i:ack:<sender>:<number>:<receiver>`: an item key no record uses, so an earlier version drops
nothing."""


T = TypeVar("T")

Receivers: TypeAlias = int | frozenset[str]
"""Whom a published message reached (ports.Invalidations.publish): how many, or which, listeners."""


@dataclass(frozen=True, slots=True)
class _Entry:
    record: SessionRecord
    user: User
    stored_at: float


class SessionCache:
    def __init__(
        self,
        *,
        max_entries: int,
        max_age: float,
        probe: Callable[[], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        on_live: Callable[[bool], None] | None = None,
    ) -> None:
        """`on_live` is told whether the feed delivers, now and at each change (the metrics)."""
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self._items: OrderedDict[str, tuple[object, float]] = OrderedDict()
        self._max_entries = max_entries
        self._max_age = max_age
        self._probe = probe
        self._monotonic = monotonic
        self._live = probe is not None
        self._on_live = on_live
        self.epoch = 0
        self._reading: dict[str, tuple[asyncio.Future[Any], int]] = {}
        self.acks = Acks()
        self.feed_bound = 0.0
        """How long a listening feed may take to deliver before it counts as lost (set by the feed)."""
        self._feed_expected_until = 0.0
        self._went_live = asyncio.Event()
        self.was_live = False
        """Whether the feed has delivered since this process started."""
        if on_live is not None:
            on_live(self._live)

    @property
    def enabled(self) -> bool:
        return self._max_entries > 0 and self._max_age > 0

    @property
    def live(self) -> bool:
        return self._live

    def __len__(self) -> int:
        return len(self._entries)

    def set_live(self, live: bool) -> None:
        """The invalidation feed is (or is no longer) delivering: either way, start empty."""
        self.clear()
        self._live = live
        if live:
            self._went_live.set()
            self.was_live = True
        else:
            self._went_live.clear()  # a revocation waiting for acknowledgements waits out the bound
        if self._on_live is not None:
            self._on_live(live)

    def expect_feed(self, bound: float) -> None:
        """A listener is starting (called before its task runs): `bound` is the longest a process's cache
        stays on after its feed stopped delivering; a revocation sent within `bound` from now waits (at
        most until then) for this process's feed to deliver, so that it can hear the acknowledgements (a
        CLI command's, say)."""
        self.feed_bound = bound
        self._feed_expected_until = self._monotonic() + bound

    async def hearing(self) -> bool:
        """Whether this process hears its feed, so that acknowledgements can reach it: at once when it
        does; while a listener is starting, once it does (bounded); otherwise not."""
        if self._live:
            return True
        left = self._feed_expected_until - self._monotonic()
        if left <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._went_live.wait(), timeout=left)
        return self._live

    def _answering(self) -> bool:
        """Live, and (for a probed feed) nothing changed since the last look."""
        if not self._live:
            return False
        if self._probe is not None and self._probe():
            self.clear()
            return False
        return True

    def get(self, key: str) -> tuple[SessionRecord, User] | None:
        if not self._answering():
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._monotonic() - entry.stored_at >= self._max_age:
            self._forget(key)
            return None
        return entry.record, entry.user

    def put(self, key: str, record: SessionRecord, user: User, *, epoch: int) -> None:
        """Keep what was read from the store, unless an invalidation arrived while it was read."""
        if not self._live or not self.enabled or epoch != self.epoch:
            return
        self._forget(key)
        self._entries[key] = _Entry(record=record, user=user, stored_at=self._monotonic())
        self._by_user.setdefault(user.id, set()).add(key)
        while len(self._entries) > self._max_entries:
            oldest = next(iter(self._entries))
            self._forget(oldest)

    def get_item(self, key: str) -> object | None:
        """Another record kept under an `ITEM_PREFIX` key, if live and fresh."""
        if not self._answering():
            return None
        found = self._items.get(key)
        if found is None:
            return None
        if self._monotonic() - found[1] >= self._max_age:
            del self._items[key]
            return None
        return found[0]

    def read_once(self, key: str, read: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        """The one store read of `key` under way, or `read()` started: the requests that arrive while it
        runs (a browser's burst, or every request once a hot entry ages out) share its answer instead of
        piling onto the store. Unless an invalidation arrived since it began (a revocation, say): it may
        have read what was revoked, so a request after the invalidation starts a read of its own.

        Keys are a session's digest or an item's key (`ITEM_PREFIX`), which never meet."""
        shared = self._reading.get(key)
        if shared is not None and shared[1] == self.epoch:
            return cast("asyncio.Future[T]", shared[0])
        future = asyncio.ensure_future(read())
        self._reading[key] = (future, self.epoch)

        def settled(done: asyncio.Future[T]) -> None:
            if self._reading.get(key, (None, 0))[0] is done:
                del self._reading[key]
            if not done.cancelled():
                done.exception()  # every waiter has it; seen even when nobody waited (a read ahead)

        future.add_done_callback(settled)
        return future

    async def item(self, key: str, read: Callable[[], Awaitable[T | None]]) -> T | None:
        """The item under `key`: from memory while live and fresh, else `read()` from the store (one read
        at a time, `read_once`). A hot entry past half its `max_age` is read again in the background
        while it keeps answering, so it is replaced before it expires instead of every request waiting
        on the store at once when it does; nothing is answered from memory past `max_age`."""
        if self._answering():
            found = self._items.get(key)
            if found is not None:
                age = self._monotonic() - found[1]
                if age < self._max_age:
                    if age >= self._max_age / 2:
                        self._read_item(key, read)  # ahead of expiry (or the read already under way)
                    return cast("T", found[0])
                del self._items[key]
        return await asyncio.shield(self._read_item(key, read))

    def _read_item(self, key: str, read: Callable[[], Awaitable[T | None]]) -> asyncio.Future[T | None]:
        epoch = self.epoch

        async def read_and_keep() -> T | None:
            value = await read()
            if value is not None:
                self.put_item(key, value, epoch=epoch)
            return value

        return self.read_once(key, read_and_keep)

    def put_item(self, key: str, value: object, *, epoch: int) -> None:
        if not self._live or not self.enabled or epoch != self.epoch:
            return
        self._items[key] = (value, self._monotonic())
        while len(self._items) > self._max_entries:
            self._items.popitem(last=False)

    def apply(self, message: str) -> None:
        """An invalidation message from any process (this one included)."""
        self.epoch += 1
        if message.startswith(ITEM_PREFIX):
            self._items.pop(message, None)
        elif message.startswith(SESSION_PREFIX):
            self._forget(message[len(SESSION_PREFIX) :])
        elif message.startswith(USER_PREFIX):
            for key in self._by_user.pop(message[len(USER_PREFIX) :], set()):
                self._entries.pop(key, None)
        else:  # unknown: be safe
            self.clear()

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._by_user.clear()
        self._items.clear()

    def _forget(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            keys = self._by_user.get(entry.user.id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_user[entry.user.id]


class _Awaited:
    __slots__ = ("done", "heard", "receivers")

    def __init__(self) -> None:
        self.receivers: Receivers | None = None
        self.heard: set[str] = set()
        self.done = asyncio.Event()

    def missing(self) -> int:
        """Acknowledgements still owed: of how many receivers, or of which (0 before the publish)."""
        receivers = self.receivers
        if receivers is None:
            return 0
        if isinstance(receivers, int):
            return max(0, receivers - len(self.heard))
        return len(receivers - self.heard)

    def settle(self) -> None:
        if self.receivers is not None and not self.missing():
            self.done.set()


class Acks:
    """This process's side of the acknowledgement protocol: its envelopes, the acknowledgements it
    owes for others', and the ones its own revocations wait for."""

    def __init__(self) -> None:
        self.sender = secrets.token_hex(8)
        self._numbers = iter(range(1, 1 << 62))
        self._awaited: dict[str, _Awaited] = {}

    def envelope(self, message: str) -> tuple[str, str]:
        """The message to publish, and its number (what its acknowledgements name)."""
        number = str(next(self._numbers))
        return f"{ENVELOPE_PREFIX}{self.sender}:{number}:{message}", number

    def received(self, payload: str, *, me: str) -> tuple[str | None, str | None]:
        """A payload from the feed, heard by the listener named `me` (what the feed's publish names its
        receivers by): the message for the cache (None for an acknowledgement), and the acknowledgement
        to publish once it is applied (None for this process's own envelopes, whose arrival counts at
        once, and for messages without an envelope)."""
        if payload.startswith(ACK_PREFIX):
            sender, _, rest = payload[len(ACK_PREFIX) :].partition(":")
            number, _, receiver = rest.partition(":")
            if sender == self.sender:
                self._heard(number, receiver)
            return None, None
        if not payload.startswith(ENVELOPE_PREFIX):
            return payload, None
        sender, _, rest = payload[len(ENVELOPE_PREFIX) :].partition(":")
        number, _, message = rest.partition(":")
        if sender == self.sender:
            self._heard(number, me)
            return message, None
        return message, f"{ACK_PREFIX}{sender}:{number}:{me}"

    def _heard(self, number: str, receiver: str) -> None:
        awaited = self._awaited.get(number)
        if awaited is not None:
            awaited.heard.add(receiver)
            awaited.settle()

    @contextlib.contextmanager
    def awaiting(self, number: str) -> Iterator[_Awaited]:
        """Count the acknowledgements of `number` from before it is published (none is missed)."""
        awaited = self._awaited[number] = _Awaited()
        try:
            yield awaited
        finally:
            del self._awaited[number]


class Invalidator:
    """Drops the local entry at once, tells every process, and returns once every listening process
    has dropped it too (bounded by how long a feed may be silent before its process's cache is off)."""

    def __init__(self, cache: SessionCache, bus: Invalidations) -> None:
        self.cache = cache
        self._bus = bus

    async def session_changed(self, key: str) -> None:
        await self._send(SESSION_PREFIX + key)

    async def user_changed(self, user_id: str) -> None:
        await self._send(USER_PREFIX + user_id)

    async def item_changed(self, key: str) -> None:
        await self._send(key)

    async def _send(self, message: str) -> None:
        cache = self.cache
        cache.apply(message)
        kind = message.split(":", 1)[0]  # what the log may say of it (never a digest or an id)
        if not await cache.hearing():
            await self._bus.publish(message)
            if cache.was_live:  # the feed delivered, and other processes may still answer from memory
                log.warning(
                    "invalidation %s: this process does not hear the feed, so it waits %.1f s, the "
                    "longest another process's cache can lag",
                    kind,
                    cache.feed_bound,
                )
                await asyncio.sleep(cache.feed_bound)
            return
        payload, number = cache.acks.envelope(message)
        with cache.acks.awaiting(number) as awaited:
            awaited.receivers = await self._bus.publish(payload)
            awaited.settle()
            if awaited.done.is_set():
                return
            try:
                await asyncio.wait_for(awaited.done.wait(), timeout=cache.feed_bound)
            except TimeoutError:
                log.warning(
                    "invalidation %s: %d listening process(es) did not acknowledge within %.1f s, the "
                    "longest a process's cache can lag (a process of an earlier version, one whose feed "
                    "is lost, or another subscriber on the channel)",
                    kind,
                    awaited.missing(),
                    cache.feed_bound,
                )


class InvalidatingSessionStore:
    """A SessionStore whose every revoking write is announced to every process."""

    def __init__(self, store: SessionStore, invalidator: Invalidator) -> None:
        self._store = store
        self._invalidator = invalidator

    async def create(self, record: SessionRecord) -> None:
        await self._store.create(record)

    async def get(self, key: str) -> SessionRecord | None:
        return await self._store.get(key)

    async def touch(self, key: str, *, last_seen_at: float, idle_expires_at: float) -> None:
        await self._store.touch(key, last_seen_at=last_seen_at, idle_expires_at=idle_expires_at)

    async def delete(self, key: str) -> bool:
        deleted = await self._store.delete(key)
        await self._invalidator.session_changed(key)
        return deleted

    async def update_auth(self, key: str, *, auth_time: float, aal: Aal, amr: Sequence[Amr]) -> bool:
        updated = await self._store.update_auth(key, auth_time=auth_time, aal=aal, amr=amr)
        await self._invalidator.session_changed(key)
        return updated

    async def delete_for_user(self, user_id: str, *, except_digest: str | None = None) -> int:
        count = await self._store.delete_for_user(user_id, except_digest=except_digest)
        await self._invalidator.user_changed(user_id)
        return count

    async def list_for_user(self, user_id: str) -> Sequence[SessionRecord]:
        return await self._store.list_for_user(user_id)


class InvalidatingUserRepo:
    """A UserRepo whose every change to what a session check returns is announced to every process."""

    def __init__(self, users: UserRepo, invalidator: Invalidator) -> None:
        self._users = users
        self._invalidator = invalidator

    async def add(self, user: User, credential: PasswordCredential | None) -> None:
        await self._users.add(user, credential)

    async def get(self, user_id: str) -> User | None:
        return await self._users.get(user_id)

    async def get_by_email(self, email_normalized: str) -> User | None:
        return await self._users.get_by_email(email_normalized)

    async def list(self, *, limit: int = 100, offset: int = 0) -> Sequence[User]:
        return await self._users.list(limit=limit, offset=offset)

    async def set_disabled(self, user_id: str, disabled: bool) -> bool:
        changed = await self._users.set_disabled(user_id, disabled)
        await self._invalidator.user_changed(user_id)
        return changed

    async def get_password(self, user_id: str) -> PasswordCredential | None:
        return await self._users.get_password(user_id)

    async def get_with_password(self, email_normalized: str) -> tuple[User, PasswordCredential | None] | None:
        return await self._users.get_with_password(email_normalized)

    async def set_password(self, credential: PasswordCredential, *, same_secret: bool = False) -> None:
        await self._users.set_password(credential, same_secret=same_secret)

    async def delete_password(self, user_id: str) -> bool:
        return await self._users.delete_password(user_id)

    async def bump_credential_epoch(self, user_id: str) -> None:
        await self._users.bump_credential_epoch(user_id)

    async def credential_epoch(self, user_id: str) -> int | None:
        return await self._users.credential_epoch(user_id)

    async def record_network(self, user_id: str, network: str, at: float) -> None:
        await self._users.record_network(user_id, network, at)

    async def network_seen_since(self, user_id: str, network: str, since: float) -> bool:
        return await self._users.network_seen_since(user_id, network, since)

    async def set_mfa_required(self, user_id: str, required: bool) -> bool:
        changed = await self._users.set_mfa_required(user_id, required)
        await self._invalidator.user_changed(user_id)
        return changed

    async def snooze_passkey_prompt(self, user_id: str, until: float) -> None:
        await self._users.snooze_passkey_prompt(user_id, until)
        await self._invalidator.user_changed(user_id)

    async def set_email_verified(self, user_id: str, email_normalized: str) -> bool:
        changed = await self._users.set_email_verified(user_id, email_normalized)
        await self._invalidator.user_changed(user_id)
        return changed

    async def change_email(self, user_id: str, *, email: str, email_normalized: str) -> None:
        try:
            await self._users.change_email(user_id, email=email, email_normalized=email_normalized)
        finally:
            await self._invalidator.user_changed(user_id)

    async def sightings(self, user_id: str) -> Sightings:
        return await self._users.sightings(user_id)

    async def remember_device(self, user_id: str, device: str, at: float) -> bool:
        return await self._users.remember_device(user_id, device, at)


class SessionCheck:
    """The signed-in user behind a session cookie: from memory when the cache may answer."""

    def __init__(
        self,
        *,
        sessions: SessionService,
        accounts: Accounts,
        cache: SessionCache,
        clock: Clock,
        touch_interval: float,
    ) -> None:
        self._sessions = sessions
        self._accounts = accounts
        self.cache = cache
        self._clock = clock
        self._touch_interval = touch_interval

    async def __call__(self, token: str) -> tuple[SessionRecord, User] | None:
        if not token or len(token) > 128:
            return None
        key = digest(token)
        hit = self.cache.get(key)
        if hit is not None:
            record = hit[0]
            now = self._clock.now()
            # Past its cached expiry, or due a last-seen write: the store decides.
            if now < record.expires_at and now - record.last_seen_at < self._touch_interval:
                return hit
        # One store read per session at a time, shared by the requests that arrive meanwhile.
        return await asyncio.shield(self.cache.read_once(key, lambda: self._load(key)))

    async def lookup(self, key: str) -> tuple[SessionRecord, User] | None:
        """The live session with this digest and its enabled user, without a last-seen write (for grants
        made on a session's behalf, such as a refresh): from memory when the cache may answer."""
        hit = self.cache.get(key)
        if hit is not None and self._clock.now() < hit[0].expires_at:
            return hit
        epoch = self.cache.epoch
        record = await self._sessions.live_session(key)
        if record is None:
            return None
        user = await self._accounts.current_user(record)
        if user is None:
            return None
        self.cache.put(key, record, user, epoch=epoch)
        return record, user

    async def _load(self, key: str) -> tuple[SessionRecord, User] | None:
        epoch = self.cache.epoch
        found = await self._sessions.check_digest(key)
        if found is None:
            return None
        user = await self._accounts.current_user(found)
        if user is None:
            return None
        self.cache.put(key, found, user, epoch=epoch)
        return found, user
