"""The new-password policy (NIST SP 800-63B rev 4) and Argon2id hashing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import statistics
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from threshold.core.errors import (
    PasswordCompromised,
    PasswordContextual,
    PasswordRejected,
    PasswordRepetitive,
    PasswordTooLong,
    PasswordTooShort,
)
from threshold.core.passwords import PasswordHasher, PasswordPolicy, VerifiedPassword, common_passwords
from threshold.settings import Argon2Settings, PasswordSettings

from .fakes import FailingRangeSource, FakeRangeSource

EMAIL = "alice.longname@example.com"
PASSPHRASE = "plum orbit candle harbor"


def sha1_upper(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest().upper()


@pytest.fixture
def policy() -> PasswordPolicy:
    return PasswordPolicy(PasswordSettings(), product_name="Threshold")


async def accepted(policy: PasswordPolicy, password: str, *, has_mfa: bool = False) -> bool:
    try:
        await policy.check_new_password(password, email=EMAIL, has_mfa=has_mfa)
    except PasswordRejected:
        return False
    return True


# --- length ---------------------------------------------------------------------------------------


async def test_minimum_is_15_without_mfa(policy: PasswordPolicy) -> None:
    await policy.check_new_password("plumorbitcandle", email=EMAIL)
    with pytest.raises(PasswordTooShort) as caught:
        await policy.check_new_password("plumorbitcandl", email=EMAIL)
    assert caught.value.details["min_length"] == 15
    assert "15" in caught.value.detail


async def test_minimum_is_8_with_mfa(policy: PasswordPolicy) -> None:
    await policy.check_new_password("plumorbx", email=EMAIL, has_mfa=True)
    with pytest.raises(PasswordTooShort) as caught:
        await policy.check_new_password("plumorb", email=EMAIL, has_mfa=True)
    assert caught.value.details["min_length"] == 8
    assert not await accepted(policy, "plumorbx", has_mfa=False)


async def test_maximum_is_128_by_default(policy: PasswordPolicy) -> None:
    longest = hashlib.sha512(b"threshold").hexdigest()
    assert len(longest) == 128
    await policy.check_new_password(longest, email=EMAIL)
    with pytest.raises(PasswordTooLong) as caught:
        await policy.check_new_password(longest + "x", email=EMAIL)
    assert caught.value.details["max_length"] == 128


async def test_a_maximum_of_64_is_allowed_and_below_is_not() -> None:
    policy = PasswordPolicy(PasswordSettings(max_length=64), product_name="Threshold")
    password = hashlib.sha256(b"threshold").hexdigest()
    assert len(password) == 64
    await policy.check_new_password(password, email=EMAIL)
    with pytest.raises(PasswordTooLong):
        await policy.check_new_password(password + "x", email=EMAIL)
    with pytest.raises(ValidationError):
        PasswordSettings(max_length=63)


async def test_length_counts_code_points_not_bytes(policy: PasswordPolicy) -> None:
    emoji = "🔑🌲🚲🎈🍋🐙🎻🧭🪁🦉🌋🧲🪴🍄🛶"
    cjk = "春眠不覚暁処処聞啼鳥夜来風雨声花"
    assert len(emoji) == 15 and len(emoji.encode()) == 60
    await policy.check_new_password(emoji, email=EMAIL)
    await policy.check_new_password(cjk, email=EMAIL)
    with pytest.raises(PasswordTooShort):
        await policy.check_new_password(emoji[:14], email=EMAIL)


async def test_length_is_counted_after_nfkc(policy: PasswordPolicy) -> None:
    decomposed = "harborcafe\u0301plum"  # 15 code points typed, 14 after NFKC ("é")
    assert len(decomposed) == 15
    with pytest.raises(PasswordTooShort):
        await policy.check_new_password(decomposed, email=EMAIL)
    ligature = "harbor\ufb01 plumca"  # "ﬁ" becomes "fi": 14 typed, 15 after NFKC
    assert len(ligature) == 14
    await policy.check_new_password(ligature, email=EMAIL)


async def test_no_composition_rules(policy: PasswordPolicy) -> None:
    await policy.check_new_password(PASSPHRASE, email=EMAIL)
    await policy.check_new_password("plumorbitcandleharbor", email=EMAIL)


# --- blocklist ------------------------------------------------------------------------------------


def test_shipped_list_has_at_least_100000_entries() -> None:
    passwords = common_passwords()
    assert len(passwords) >= 100_000
    assert {"password", "123456", "qwerty"} <= passwords


@pytest.fixture
async def long_common_password() -> str:
    """An entry of the shipped list that every rule but the blocklist would accept."""
    lenient = PasswordPolicy(PasswordSettings(blocklist=False), product_name="Threshold")
    for candidate in sorted(p for p in common_passwords() if len(p) >= 15 and any(c.isalpha() for c in p)):
        if await accepted(lenient, candidate):
            return candidate
    raise AssertionError("the shipped list has no long entry to test with")


async def test_common_password_is_rejected(policy: PasswordPolicy, long_common_password: str) -> None:
    with pytest.raises(PasswordCompromised):
        await policy.check_new_password(long_common_password, email=EMAIL)


async def test_common_password_is_rejected_in_any_case(
    policy: PasswordPolicy, long_common_password: str
) -> None:
    variant = long_common_password.upper()
    assert variant != long_common_password
    with pytest.raises(PasswordCompromised):
        await policy.check_new_password(variant, email=EMAIL)


async def test_blocklist_can_be_switched_off(long_common_password: str) -> None:
    policy = PasswordPolicy(PasswordSettings(blocklist=False), product_name="Threshold")
    await policy.check_new_password(long_common_password, email=EMAIL)


# --- repetition and context -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["aaaaaaaaaaaaaaaa", "abcabcabcabcabcabc", "xyzwxyzwxyzwxyzw", "ABababababababab"]
)
async def test_repetitive_passwords_are_rejected(policy: PasswordPolicy, password: str) -> None:
    with pytest.raises(PasswordRepetitive):
        await policy.check_new_password(password, email=EMAIL)


@pytest.mark.parametrize(
    "password",
    [
        pytest.param(EMAIL, id="the-email"),
        pytest.param(EMAIL.upper(), id="the-email-upper-case"),
        pytest.param("alice.longname2024!", id="local-part-plus-suffix"),
        pytest.param("2024alice.longname", id="local-part-plus-prefix"),
        pytest.param("Threshold123456", id="product-name-plus-digits"),
        pytest.param("mythreshold2026", id="product-name-in-middle"),
    ],
)
async def test_contextual_passwords_are_rejected(policy: PasswordPolicy, password: str) -> None:
    with pytest.raises(PasswordContextual):
        await policy.check_new_password(password, email=EMAIL)


async def test_context_words_inside_a_long_passphrase_are_fine(policy: PasswordPolicy) -> None:
    await policy.check_new_password("threshold of the old orbit harbor", email=EMAIL)


async def test_product_name_is_taken_from_the_theme(policy: PasswordPolicy) -> None:
    await policy.check_new_password("acme login 12345", email=EMAIL)
    acme = PasswordPolicy(PasswordSettings(), product_name="Acme Login")
    for password in ("acme login 12345", "AcmeLogin2026!!", "login acme 2026"):
        with pytest.raises(PasswordContextual):
            await acme.check_new_password(password, email=EMAIL)


async def test_the_software_name_stays_a_context_word_under_another_theme() -> None:
    policy = PasswordPolicy(PasswordSettings(), product_name="Acme Login")
    with pytest.raises(PasswordContextual):
        await policy.check_new_password("Threshold123456", email=EMAIL)


# --- predictable passwords (issue 10) -------------------------------------------------------------

ALICE = "alice.smith@example.com"


async def rejection(policy: PasswordPolicy, password: str, *, email: str = ALICE) -> PasswordRejected:
    with pytest.raises(PasswordRejected) as caught:
        await policy.check_new_password(password, email=email)
    return caught.value


@pytest.mark.parametrize(
    ("password", "error"),
    [
        pytest.param("123456789012345", PasswordRepetitive, id="digits-in-order"),
        pytest.param("abcdefghijklmnop", PasswordRepetitive, id="letters-in-order"),
        pytest.param(ALICE, PasswordContextual, id="the-address"),
    ],
)
async def test_the_examples_of_the_issue_are_refused_with_a_message_saying_what_to_do(
    policy: PasswordPolicy, password: str, error: type[PasswordRejected]
) -> None:
    refused = await rejection(policy, password)
    assert type(refused) is error
    assert refused.detail != error.message  # the policy's own wording, not the class default
    assert "unrelated words" in refused.detail  # what to do instead
    assert password not in refused.detail and ALICE not in refused.detail


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("0987654321098765", id="digits-down-wrapping"),
        pytest.param("7890123456789012", id="digits-up-wrapping"),
        pytest.param("zyxwvutsrqponmlk", id="letters-down"),
        pytest.param("wxyzabcdefghijkl", id="letters-wrapping"),
        pytest.param("QWERTYUIOPASDFGH", id="keyboard-rows"),
        pytest.param("poiuytrewqlkjhgf", id="keyboard-rows-reversed"),
        pytest.param("!@#$%^&*()_+!@#$", id="shifted-digit-row"),
        pytest.param("azertyuiopqsdfgh", id="azerty"),
        pytest.param("abcdefgh12345678", id="two-runs"),
        pytest.param("1234567890qwerty", id="digits-then-keyboard"),
        pytest.param("aaaabbbbccccdddd", id="repeated-characters"),
        pytest.param("121212121212121", id="two-characters-repeated"),
        pytest.param("plumorbitplumorbit", id="a-short-part-twice"),
        pytest.param("hunter2hunter2hunter2", id="a-short-part-three-times"),
        pytest.param("abcd 1234 qwerty", id="runs-and-spaces"),
    ],
)
async def test_sequences_keyboard_runs_and_repeats_are_refused(policy: PasswordPolicy, password: str) -> None:
    refused = await rejection(policy, password)
    assert isinstance(refused, PasswordRepetitive), refused
    assert "such as a few unrelated words" in refused.detail


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("Alice.Smith2026!", id="local-part-plus-year"),
        pytest.param("alicesmith2026!!", id="local-part-without-dot"),
        pytest.param("Smith.Alice.2026", id="local-part-pieces-swapped"),
        pytest.param("alice-smith-rules", id="local-part-pieces-with-dashes"),
        pytest.param("Alice.Smith@Example.com!", id="address-plus-suffix"),
        pytest.param("alice.smith@example.com2026", id="address-plus-year"),
        pytest.param("2026ALICE.SMITH@EXAMPLE.COM", id="address-upper-case-with-prefix"),
        pytest.param("alicesmith@example", id="address-without-dots-and-tld"),
        pytest.param("example.com2026!!", id="domain-plus-year"),
        pytest.param("Example2026Example", id="domain-name-part"),
        pytest.param("threshold2026!!!", id="software-name"),
        pytest.param("smith threshold!", id="local-part-and-software-name"),
    ],
)
async def test_the_address_its_parts_and_the_service_name_are_refused(
    policy: PasswordPolicy, password: str
) -> None:
    refused = await rejection(policy, password)
    assert isinstance(refused, PasswordContextual), refused
    assert "email address" in refused.detail


async def test_a_short_address_is_still_context(policy: PasswordPolicy) -> None:
    for password in ("bob@example.com", "Bob@Example.com!", "bob@example.com2026"):
        assert isinstance(await rejection(policy, password, email="bob@example.com"), PasswordContextual)


async def test_the_address_is_context_whatever_case_it_was_registered_in(policy: PasswordPolicy) -> None:
    refused = await rejection(policy, "alice.smith@example.com", email="Alice.Smith@EXAMPLE.com")
    assert isinstance(refused, PasswordContextual)


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("abcd plum orbit harbor", id="a-4-letter-sequence"),
        pytest.param("my dog likes 1234 bones", id="a-4-digit-sequence"),
        pytest.param("qwerty is not my password", id="a-keyboard-run"),
        pytest.param("alice plum orbit candle harbor", id="the-first-name"),
        pytest.param("smith and sons orbit harbor", id="the-last-name"),
        pytest.param("example of a plum orbit", id="the-domain-name"),
        pytest.param("liberty property", id="natural-keyboard-run-erty"),
        pytest.param("mississippi river boat", id="natural-repeats"),
        pytest.param("correcthorsebatterystaplecorrecthorsebatterystaple", id="a-long-part-twice"),
        pytest.param("Tr0ub4dor&3 plum!", id="mixed"),
    ],
)
async def test_passphrases_that_merely_contain_a_sequence_or_a_context_word_pass(
    policy: PasswordPolicy, password: str
) -> None:
    await policy.check_new_password(password, email=ALICE)


async def test_more_than_half_is_the_line(policy: PasswordPolicy) -> None:
    await policy.check_new_password("alice.smith plumorbit!", email=ALICE)  # 11 of 22: not more than half
    with pytest.raises(PasswordContextual):
        await policy.check_new_password("alice.smith plumorbit", email=ALICE)  # 11 of 21
    await policy.check_new_password("1234 plu", email=ALICE, has_mfa=True)  # 4 of 8: half
    with pytest.raises(PasswordRepetitive):
        await policy.check_new_password("12345 pl", email=ALICE, has_mfa=True)  # 5 of 8


async def test_a_repeated_part_counts_once_so_it_must_reach_the_minimum_length(
    policy: PasswordPolicy,
) -> None:
    with pytest.raises(PasswordRepetitive):
        await policy.check_new_password("plmkplmk", email=ALICE, has_mfa=True)
    await policy.check_new_password("plmkvowz" * 2, email=ALICE, has_mfa=True)
    with pytest.raises(PasswordRepetitive):
        await policy.check_new_password("plumorbitcandl" * 2, email=ALICE)  # 14 < 15
    await policy.check_new_password("plumorbitcandle" * 2, email=ALICE)


# --- range query hook -----------------------------------------------------------------------------


async def test_password_found_by_the_range_query_is_compromised() -> None:
    source = FakeRangeSource(sha1_upper(PASSPHRASE))
    policy = PasswordPolicy(PasswordSettings(), product_name="Threshold", range_source=source)
    with pytest.raises(PasswordCompromised):
        await policy.check_new_password(PASSPHRASE, email=EMAIL)
    assert source.prefixes == [sha1_upper(PASSPHRASE)[:5]]


async def test_range_query_sends_only_the_prefix_and_accepts_unlisted_passwords() -> None:
    source = FakeRangeSource(sha1_upper("some other password entirely"))
    policy = PasswordPolicy(PasswordSettings(), product_name="Threshold", range_source=source)
    await policy.check_new_password(PASSPHRASE, email=EMAIL)
    assert source.prefixes == [sha1_upper(PASSPHRASE)[:5]]


async def test_range_query_outage_fails_open() -> None:
    source = FailingRangeSource()
    policy = PasswordPolicy(PasswordSettings(), product_name="Threshold", range_source=source)
    await policy.check_new_password(PASSPHRASE, email=EMAIL)
    assert source.calls == 1


# --- hashing --------------------------------------------------------------------------------------


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    h = PasswordHasher(Argon2Settings())
    yield h
    h.close()


@pytest.fixture
def stronger_hasher() -> Iterator[PasswordHasher]:
    h = PasswordHasher(Argon2Settings(time_cost=3))
    yield h
    h.close()


async def test_hash_is_argon2id_with_owasp_parameters(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(PASSPHRASE)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSPHRASE not in stored
    assert await hasher.hash(PASSPHRASE) != stored  # salted


async def test_verify_accepts_the_password_and_nothing_else(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(PASSPHRASE)
    assert await hasher.verify(expected_hash=stored, password=PASSPHRASE) == VerifiedPassword(
        needs_rehash=False
    )
    assert await hasher.verify(expected_hash=stored, password=PASSPHRASE + " ") is None
    assert await hasher.verify(expected_hash=stored, password=PASSPHRASE.upper()) is None
    assert await hasher.verify(expected_hash="not a phc string", password=PASSPHRASE) is None


async def test_nfkc_equivalent_passwords_verify(hasher: PasswordHasher) -> None:
    fullwidth = "\uff50\uff4c\uff55\uff4d \uff4f\uff52\uff42\uff49\uff54"  # "plum orbit"
    stored = await hasher.hash(fullwidth + " caf\u00e9")
    assert await hasher.verify(expected_hash=stored, password="plum orbit cafe\u0301") is not None


async def test_raised_parameters_ask_for_a_rehash(
    hasher: PasswordHasher, stronger_hasher: PasswordHasher
) -> None:
    old = await hasher.hash(PASSPHRASE)
    verified = await stronger_hasher.verify(expected_hash=old, password=PASSPHRASE)
    assert verified == VerifiedPassword(needs_rehash=True)
    new = await stronger_hasher.hash(PASSPHRASE)
    assert "t=3" in new
    assert await stronger_hasher.verify(expected_hash=new, password=PASSPHRASE) == VerifiedPassword(
        needs_rehash=False
    )


async def test_verify_without_a_hash_fails_after_the_same_work(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(PASSPHRASE)
    assert await hasher.verify(expected_hash=None, password=PASSPHRASE) is None  # warms the dummy hash

    async def timed(expected_hash: str | None) -> float:
        start = time.perf_counter()
        await hasher.verify(expected_hash=expected_hash, password=PASSPHRASE)
        return time.perf_counter() - start

    # interleaved, so that a busy machine slows both alike
    pairs = [(await timed(stored), await timed(None)) for _ in range(9)]
    real, missing = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    assert 0.4 < missing / real < 2.5, f"missing-hash verify {missing:.4f}s vs real {real:.4f}s"


async def test_hashing_does_not_block_the_event_loop(hasher: PasswordHasher) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.perf_counter()
    hashes = await asyncio.gather(*(hasher.hash(f"{PASSPHRASE} {i}") for i in range(4)))
    elapsed = time.perf_counter() - start
    ticks_during = ticks
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(set(hashes)) == 4
    # If a hash ran on the loop the ticker would starve for the whole time; allow generous jitter.
    assert ticks_during >= max(3, int(elapsed / 0.005) // 4), (ticks_during, elapsed)
