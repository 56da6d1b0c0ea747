"""Password hashing (Argon2id via argon2-cffi) and the new-password policy (NIST SP 800-63B rev 4)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import os
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
        workers = params.max_concurrent or (os.cpu_count() or 1)
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


def _is_repetitive(password: str) -> bool:
    """A single character or a short pattern repeated ("aaaaaaaa", "abcabcabcabc")."""
    n = len(password)
    for size in range(1, min(4, n // 2) + 1):
        if n % size == 0 and password[:size] * (n // size) == password:
            return True
    return False


class PasswordPolicy:
    """Rules for new passwords: length, blocklist, context words. No composition rules."""

    def __init__(
        self, settings: PasswordSettings, *, product_name: str, range_source: BreachRangeSource | None = None
    ) -> None:
        self._settings = settings
        self._product = product_name.casefold()
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
        if _is_repetitive(folded):
            raise PasswordRepetitive()
        if self._is_contextual(folded, email=email.casefold(), minimum=minimum):
            raise PasswordContextual()
        if self._settings.blocklist and folded in common_passwords():
            raise PasswordCompromised()
        if self._range_source is not None and await self._seen_in_breach(text):
            raise PasswordCompromised()

    def _is_contextual(self, folded: str, *, email: str, minimum: int) -> bool:
        """The password is mostly the address, its local part or the service name."""
        if folded == email:
            return True
        words = [word for word in (email.split("@", 1)[0], self._product) if len(word) >= 4]
        return any(word in folded and len(folded.replace(word, "")) < minimum // 2 for word in words)

    async def _seen_in_breach(self, password: str) -> bool:
        sha1 = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
        assert self._range_source is not None
        try:
            suffixes = await self._range_source.suffixes(sha1[:5])
        except Exception as exc:  # an outage of an optional, remote hook must not block sign-up
            log.warning("breached-password range query failed: %s", type(exc).__name__)
            return False
        return suffixes.get(sha1[5:], 0) > 0
