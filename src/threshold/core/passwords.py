"""Password hashing (Argon2id via argon2-cffi) and the new-password policy (NIST SP 800-63B rev 4)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import os
import re
import secrets
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib import resources

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from threshold.core.errors import (
    PasswordCompromised,
    PasswordContextual,
    PasswordRepetitive,
    PasswordTooLong,
    PasswordTooShort,
)
from threshold.core.ports import BreachRangeSource
from threshold.settings import Argon2Settings, PasswordSettings

log = logging.getLogger(__name__)


def normalize_password(password: str) -> str:
    """NFKC, as SP 800-63B rev 4 section 3.1.1.2 recommends before hashing, so every keyboard agrees."""
    return unicodedata.normalize("NFKC", password)


@dataclass(frozen=True, slots=True)
class VerifiedPassword:
    """The password matched. `needs_rehash` is true when the stored parameters are out of date."""

    needs_rehash: bool


def usable_cpus() -> int:
    """The cores this process may run on (its affinity: `taskset`, a container's cpuset), not the
    machine's: more hashes at once than cores only interleave them, each evicting the other's memory
    (19 MiB or more) from the cache, so every hash gets slower."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PasswordHasher:
    """Argon2id hashing on a bounded thread pool, so a hash never blocks the event loop.

    argon2-cffi releases the GIL while hashing, so the pool uses every core.
    """

    def __init__(self, params: Argon2Settings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        workers = params.max_concurrent or usable_cpus()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._hasher.hash, normalize_password(password))

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(24))
        return self._dummy_hash

    def _verify_sync(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, *, expected_hash: str | None, password: str) -> VerifiedPassword | None:
        """Check a password against a stored hash; with no hash, spend the same time and fail.

        Args:
            expected_hash: the stored PHC string, or None for an unknown account (a dummy hash with
                the same parameters is verified instead, so timing does not reveal the difference).
            password: the candidate.

        Returns:
            VerifiedPassword when it matches, else None.
        """
        stored = expected_hash if expected_hash is not None else await self._dummy()
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(
            self._executor, self._verify_sync, stored, normalize_password(password)
        )
        if not ok or expected_hash is None:
            return None
        return VerifiedPassword(needs_rehash=self._hasher.check_needs_rehash(expected_hash))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of at least 100,000 common and breached passwords (lower-case)."""
    data = resources.files("threshold.core").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode("utf-8").split("\n"))


# --- predictable passwords --------------------------------------------------------------------------
#
# SP 800-63B rev 3 section 5.1.1.2 lists "repetitive or sequential characters (e.g. 'aaaaaa',
# '1234abcd')" and "context-specific words, such as the name of the service, the username, and
# derivatives thereof" among the values a verifier refuses; rev 4 section 3.1.1.2 keeps them in the
# blocklist of commonly used, expected or compromised values. The rule, applied to the password after
# NFKC and case folding, marks each character that is predictable:
#
#   - context: it lies in an occurrence of the address; of its local part, whole, without separators
#     and piece by piece ("alice.smith": "alicesmith", "alice", "smith"); of the domain, whole,
#     without dots and each label but the last ("example"); of the product name (settings.theme),
#     whole, without spaces and word by word; or of "threshold". Words under _MIN_CONTEXT_WORD
#     characters are ignored.
#   - run: it lies in a run of at least _MIN_RUN characters that steps one place up or down an order
#     of _SEQUENCES ("1234", "dcba", "7890123", "qwerty", "poiuy"), or that repeats a piece of at most
#     _MAX_PIECE characters at least three times ("aaaa", "121212", "abcabcabc").
#
# A password is refused when more than half its characters are context (PasswordContextual), or
# more than half are context or runs (PasswordRepetitive), or when it is one piece shorter than the
# minimum length typed twice or more ("plumorbitplumorbit": PasswordRepetitive). So a passphrase that
# merely contains "abcd", "1234" or a context word still passes.

_MIN_CONTEXT_WORD = 3
_MIN_RUN = 4
_MAX_PIECE = 4
# (order, wraps around): digits and letters wrap ("7890123", "xyzab"); keyboard rows do not.
_SEQUENCES: tuple[tuple[str, bool], ...] = (
    ("0123456789", True),
    ("abcdefghijklmnopqrstuvwxyz", True),
    ("1234567890-=", False),
    ("!@#$%^&*()_+", False),
    ("qwertyuiop[]\\", False),
    ("asdfghjkl;'", False),
    ("zxcvbnm,./", False),
    ("qwertyuiopasdfghjklzxcvbnm", False),  # the letter rows read one after another
    ("qwertzuiop", False),  # QWERTZ
    ("yxcvbnm", False),
    ("azertyuiop", False),  # AZERTY
    ("qsdfghjklm", False),
    ("wxcvbn", False),
)
_SEQUENCE_INDEX: tuple[tuple[dict[str, int], int, bool], ...] = tuple(
    ({ch: i for i, ch in enumerate(order)}, len(order), wraps) for order, wraps in _SEQUENCES
)

_CONTEXTUAL_MESSAGE = (
    "Too much of this password comes from your email address or the name of this service. "
    "Leave them out, or make it longer with a few unrelated words."
)
_SEQUENCE_MESSAGE = (
    "Too much of this password is repeated characters or a sequence such as 'aaaa', '1234', 'abcd' "
    "or 'qwerty'. Choose something less predictable, such as a few unrelated words."
)
_REPEATED_MESSAGE = (
    "This password is one short part typed again and again. Choose a longer one that does not "
    "repeat, such as a few unrelated words."
)


def _pieces(text: str) -> list[str]:
    """The letter-and-digit pieces of `text` ("alice.smith+news": "alice", "smith", "news")."""
    return [piece for piece in re.split(r"[\W_]+", text) if piece]


def _context_words(*, email: str, product_name: str) -> frozenset[str]:
    """The words a password must not be mostly made of: the address and its parts, the service name.

    Args:
        email: the account's address (any case).
        product_name: the name the service shows (settings.theme.product_name).

    Returns:
        Case-folded NFKC words of at least _MIN_CONTEXT_WORD characters.
    """
    address = normalize_password(email).casefold()
    local, _, domain = address.rpartition("@")
    product = normalize_password(product_name).casefold()
    words = [address, "threshold"]
    for whole, parts in (
        (local, _pieces(local)),
        (domain, _pieces(domain)[:-1]),  # not the top-level label ("com")
        (product, _pieces(product)),
    ):
        words += [whole, "".join(_pieces(whole)), *parts]
    return frozenset(word for word in words if len(word) >= _MIN_CONTEXT_WORD)


def _mark_context(text: str, words: frozenset[str], marked: list[bool]) -> None:
    for word in words:
        start = text.find(word)
        while start != -1:
            marked[start : start + len(word)] = [True] * len(word)
            start = text.find(word, start + 1)


def _steps(index: dict[str, int], size: int, wraps: bool, a: str, b: str, step: int) -> bool:
    if a not in index or b not in index:
        return False
    delta = index[b] - index[a]
    return delta % size == step % size if wraps else delta == step


def _mark_runs(text: str, marked: list[bool]) -> None:
    n = len(text)
    for index, size, wraps in _SEQUENCE_INDEX:
        for step in (1, -1):
            start = 0
            for end in range(1, n + 1):
                if end < n and _steps(index, size, wraps, text[end - 1], text[end], step):
                    continue
                if end - start >= _MIN_RUN:
                    marked[start:end] = [True] * (end - start)
                start = end
    for piece in range(1, _MAX_PIECE + 1):
        shortest = max(_MIN_RUN, 3 * piece)
        end = piece
        while end < n:
            if text[end] != text[end - piece]:
                end += 1
                continue
            start = end - piece
            while end < n and text[end] == text[end - piece]:
                end += 1
            if end - start >= shortest:
                marked[start:end] = [True] * (end - start)


def _period(text: str) -> int:
    """The length of the shortest piece typed at least twice that makes up `text` (the last copy may
    be cut short), or len(text) when there is none."""
    for size in range(1, len(text) // 2 + 1):
        if text[size:] == text[:-size]:
            return size
    return len(text)


def _refuse_predictable(folded: str, *, context: frozenset[str], minimum: int) -> None:
    """Refuse a password that is mostly context words, repeats or sequences (the rule above).

    Args:
        folded: the new password after NFKC and case folding.
        context: from _context_words().
        minimum: the minimum length that applies to the account.

    Raises:
        PasswordContextual, PasswordRepetitive.
    """
    n = len(folded)
    if _period(folded) < min(minimum, n):
        raise PasswordRepetitive(_REPEATED_MESSAGE)
    marked = [False] * n
    _mark_context(folded, context, marked)
    if 2 * sum(marked) > n:
        raise PasswordContextual(_CONTEXTUAL_MESSAGE)
    _mark_runs(folded, marked)
    if 2 * sum(marked) > n:
        raise PasswordRepetitive(_SEQUENCE_MESSAGE)


class PasswordPolicy:
    """Rules for new passwords: length, blocklist, context words. No composition rules."""

    def __init__(
        self, settings: PasswordSettings, *, product_name: str, range_source: BreachRangeSource | None = None
    ) -> None:
        self._settings = settings
        self._product_name = product_name
        self._range_source = range_source

    @property
    def max_length(self) -> int:
        return self._settings.max_length

    def min_length(self, *, has_mfa: bool) -> int:
        return self._settings.min_length_with_mfa if has_mfa else self._settings.min_length

    async def check_new_password(self, password: str, *, email: str, has_mfa: bool = False) -> None:
        """Accept a new password or raise the PasswordRejected subclass naming the broken rule.

        Length counts Unicode code points after NFKC (SP 800-63B rev 4 section 3.1.1.2).

        Raises:
            PasswordTooShort, PasswordTooLong, PasswordRepetitive, PasswordContextual,
            PasswordCompromised.
        """
        text = normalize_password(password)
        minimum = self.min_length(has_mfa=has_mfa)
        if len(text) < minimum:
            raise PasswordTooShort(f"Use at least {minimum} characters.", min_length=minimum)
        if len(text) > self._settings.max_length:
            raise PasswordTooLong(
                f"Use at most {self._settings.max_length} characters.", max_length=self._settings.max_length
            )
        folded = text.casefold()
        _refuse_predictable(
            folded, context=_context_words(email=email, product_name=self._product_name), minimum=minimum
        )
        if self._settings.blocklist and folded in common_passwords():
            raise PasswordCompromised()
        if self._range_source is not None and await self._seen_in_breach(text):
            raise PasswordCompromised()

    async def _seen_in_breach(self, password: str) -> bool:
        sha1 = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
        assert self._range_source is not None
        try:
            suffixes = await self._range_source.suffixes(sha1[:5])
        except Exception as exc:  # an outage of an optional, remote hook must not block sign-up
            log.warning("breached-password range query failed: %s", type(exc).__name__)
            return False
        return suffixes.get(sha1[5:], 0) > 0
