"""The sections of Settings (nested objects, `THRESHOLD_<SECTION>__<OPTION>`), each option documented once."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

# OWASP Password Storage Cheat Sheet, Argon2id minimum: m=19 MiB, t=2, p=1.
ARGON2_MIN_MEMORY_KIB = 19 * 1024
ARGON2_MIN_TIME_COST = 2


class Argon2Settings(BaseModel):
    """Argon2id parameters; changing them rehashes each password at its owner's next sign-in."""

    memory_kib: int = Field(
        ARGON2_MIN_MEMORY_KIB,
        ge=ARGON2_MIN_MEMORY_KIB,
        le=4 * 1024 * 1024,
        description="Memory cost in KiB (OWASP minimum 19456).",
    )
    time_cost: int = Field(ARGON2_MIN_TIME_COST, ge=ARGON2_MIN_TIME_COST, le=50, description="Iterations.")
    parallelism: int = Field(1, ge=1, le=16, description="Lanes.")
    max_concurrent: int = Field(
        0,
        ge=0,
        le=256,
        description="Hashes computed at once per process (0: one per CPU). Bounds memory under load.",
    )


class PasswordSettings(BaseModel):
    """Password policy (NIST SP 800-63B rev 4, section 3.1.1.2)."""

    min_length: int = Field(
        15, ge=8, le=64, description="Minimum length when the password is the only factor."
    )
    min_length_with_mfa: int = Field(8, ge=8, le=64, description="Minimum length for accounts with MFA.")
    max_length: int = Field(128, ge=64, le=1024, description="Maximum length (at least 64).")
    blocklist: bool = Field(
        True, description="Screen new passwords against the shipped common-password list."
    )
    range_query_url: str | None = Field(
        None,
        description=(
            "Optional k-anonymity range-query endpoint (Have I Been Pwned protocol), e.g. "
            "https://api.pwnedpasswords.com/range/ ; only the first 5 hex digits of the SHA-1 leave the host."
        ),
    )
    range_query_timeout: float = Field(
        2.0, gt=0, le=30, description="Seconds before the range query is given up."
    )


class SessionSettings(BaseModel):
    """Browser sessions."""

    idle_timeout: int = Field(
        7 * 86400, ge=60, description="Seconds of inactivity after which a session ends."
    )
    absolute_lifetime: int = Field(
        30 * 86400, ge=300, description="Seconds after sign-in when a session ends."
    )
    touch_interval: int = Field(
        60,
        ge=0,
        le=3600,
        description="Last-seen is written at most once per this many seconds, so checks rarely write.",
    )
    pending_login_lifetime: int = Field(
        600, ge=60, le=3600, description="Seconds a pending (MFA) login lasts."
    )
    cache_ttl: float = Field(
        5.0,
        ge=0,
        le=60,
        description=(
            "Seconds a process may answer a session check from memory. Revocations reach every process "
            "at once (Redis pub/sub, PostgreSQL NOTIFY or the SQLite change file); this only bounds what "
            "a lost message could cost. 0 turns the cache off."
        ),
    )
    cache_entries: int = Field(
        100_000, ge=0, le=10_000_000, description="Most sessions a process keeps in memory (0: no cache)."
    )

    @model_validator(mode="after")
    def _idle_within_absolute(self) -> SessionSettings:
        if self.idle_timeout > self.absolute_lifetime:
            raise ValueError(
                "idle_timeout (THRESHOLD_SESSION__IDLE_TIMEOUT) must not exceed "
                "absolute_lifetime (THRESHOLD_SESSION__ABSOLUTE_LIFETIME)"
            )
        return self


class RateLimitSettings(BaseModel):
    """Throttling of sign-in and sign-up (fixed windows, shared through the SQL store or Redis)."""

    window: int = Field(900, ge=10, le=86400, description="Window length in seconds for login limits.")
    login_per_account: int = Field(
        30,
        ge=1,
        le=99,
        description="Failed logins per account per window from unfamiliar networks (NIST: well under 100).",
    )
    login_per_account_ip: int = Field(10, ge=1, le=99, description="Failed logins per account and address.")
    login_per_ip: int = Field(100, ge=1, description="Failed logins per client address per window.")
    signup_per_ip: int = Field(20, ge=1, description="Sign-ups per client address per hour.")
    export_per_day: int = Field(
        5, ge=1, le=1000, description="Downloads of a person's own data export per account per day."
    )
    consecutive_failures: int = Field(
        100,
        ge=5,
        le=100,
        description=(
            "Failed passwords and codes in a row on one account, across windows, before only a success by "
            "another way (passkey, emailed link, password reset) clears it (SP 800-63B-4: at most 100)."
        ),
    )
    ipv4_prefix: int = Field(
        32, ge=8, le=32, description="Per-address limits key on this IPv4 prefix length (32: the address)."
    )
    ipv6_prefix: int = Field(
        64, ge=16, le=128, description="Per-address limits key on this IPv6 prefix length (64: one subnet)."
    )
    known_network_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="A network (IPv4 /24, IPv6 /64) with a successful sign-in this recently is familiar.",
    )


class OidcSettings(BaseModel):
    """OpenID Connect provider."""

    access_token_lifetime: int = Field(
        300,
        ge=30,
        le=900,
        description="Default access-token lifetime in seconds (per client, capped at 900).",
    )
    refresh_token_lifetime: int = Field(
        30 * 86400, ge=300, description="Refresh-token lifetime in seconds (never past the session's end)."
    )
    refresh_reuse_grace: int = Field(
        0,
        ge=0,
        le=60,
        description=(
            "Seconds during which the legitimate client may re-submit a just-rotated refresh token and "
            "get the same successor back (0: off; any reuse revokes the family)."
        ),
    )
    key_rotation_interval: int = Field(
        30 * 86400, ge=3600, description="Seconds between automatic signing-key rotations."
    )
    audiences: list[str] = Field(
        default_factory=list,
        description="Resource indicators (RFC 8707 `resource`) clients may ask access tokens for.",
    )
    default_audience: str | None = Field(
        None, description="Audience of access tokens when no resource is requested (default: the issuer)."
    )


class MfaSettings(BaseModel):
    """Second factors, step-up and recovery."""

    required: bool = Field(False, description="Every account must have a second factor (passkey or TOTP).")
    reauthentication_window: int = Field(
        600,
        ge=5,
        le=86400,
        description="Seconds after a sign-in or step-up during which sensitive actions are allowed.",
    )
    code_attempts: int = Field(
        10, ge=3, le=50, description="Wrong one-time or recovery codes per account per window before a 429."
    )
    code_window: int = Field(900, ge=60, le=86400, description="Window (seconds) for code_attempts.")
    recovery_wait: int = Field(
        86400,
        ge=0,
        le=30 * 86400,
        description="Seconds between an operator-approved recovery and the reset of the user's factors.",
    )
    passkey_prompt_snooze: int = Field(
        30 * 86400, ge=0, description="Seconds the passkey upgrade prompt stays hidden after 'Not now'."
    )


class WebAuthnSettings(BaseModel):
    """Passkeys."""

    rp_id: str | None = Field(
        None, description="WebAuthn relying-party id (default: the issuer's host name)."
    )
    origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed in passkey ceremonies (default: the issuer's origin).",
    )
    challenge_lifetime: int = Field(
        300, ge=30, le=900, description="Seconds a passkey challenge stays valid."
    )


class EmailSettings(BaseModel):
    """Email verification, password reset, sign-in by email, notifications."""

    verification: Literal["required", "optional", "off"] = Field(
        "optional",
        description=(
            "required: sign-up sends a link and no session until it is opened (sign-up then reveals nothing "
            "about existing accounts); optional: sign in at once, verify later; off: no verification mail."
        ),
    )
    verification_lifetime: int = Field(
        86400, ge=600, description="Seconds an address-verification link lasts."
    )
    reset_lifetime: int = Field(1200, ge=300, le=86400, description="Seconds a password-reset link lasts.")
    login_enabled: bool = Field(
        True, description="Allow sign-in by email link or code (a lower-assurance path)."
    )
    login_lifetime: int = Field(600, ge=120, le=3600, description="Seconds a sign-in link and code last.")
    code_attempts: int = Field(5, ge=1, le=10, description="Wrong codes allowed per emailed sign-in code.")
    per_address: int = Field(
        5, ge=1, le=100, description="Emails (reset, sign-in, resend) per address per hour."
    )
    per_ip: int = Field(30, ge=1, description="Email requests per client address per hour.")
    notify_new_device: bool = Field(True, description="Email the user when a new browser or device signs in.")
    max_attempts: int = Field(12, ge=1, le=100, description="Delivery attempts before a message is given up.")


class BackchannelSettings(BaseModel):
    """Delivery of logout tokens to applications (OpenID Connect Back-Channel Logout 1.0)."""

    timeout: float = Field(5.0, gt=0, le=60, description="Seconds to wait for an application's answer.")
    retry_base: float = Field(
        2.0, gt=0, le=600, description="Seconds before the first retry; each retry waits twice as long."
    )
    max_backoff: float = Field(600.0, ge=0.1, le=86400, description="The longest wait between two retries.")
    give_up_after: float = Field(
        86400.0, ge=60, description="Seconds after which an undelivered logout token is given up."
    )
    concurrency: int = Field(
        8,
        ge=1,
        le=512,
        description=(
            "Logout tokens posted at once by one process. More is not faster: the HTTP client's CPU per "
            "request grows with its open connections (measured 0.9 ms at 8, 2.6 ms at 32)."
        ),
    )
    poll_interval: float = Field(
        0.25,
        gt=0,
        le=60,
        description=(
            "Seconds between looks at the queue for work queued by other processes (so that every "
            "process takes part in a large logout fan-out within this time)."
        ),
    )


class DnsSettings(BaseModel):
    """DNS lookups (the TXT records that prove an organization owns a domain)."""

    nameservers: list[str] = Field(
        default_factory=list,
        description="IP addresses of the DNS servers to ask (empty: the system resolver, /etc/resolv.conf).",
    )
    port: int = Field(53, ge=1, le=65535, description="Port of the DNS servers in nameservers.")
    timeout: float = Field(
        3.0, gt=0, le=30, description="Seconds a lookup may take in all before DNS counts as unavailable."
    )

    @field_validator("nameservers")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_address(address.strip())) for address in value]
        except ValueError:
            raise ValueError("must be IP addresses") from None


def upstream_url_error(url: str) -> str | None:
    """Why an upstream identity provider's URL is not acceptable, or None: https, or http on loopback
    only (a local IdP, the tests)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK_NAMES:
        return None
    return "must be an https URL (http only on loopback)"


class SocialConnectionSettings(BaseModel):
    """An operator-wide OpenID provider (Google, Microsoft, GitLab...) offered as a button on sign-in."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$", description="Short name, used in URLs.")
    name: str = Field(min_length=1, max_length=60, description="Shown on the button: 'Continue with NAME'.")
    issuer: str = Field(description="The provider's exact issuer; discovery is read from it.")
    client_id: str = Field(min_length=1, max_length=500)
    client_secret: SecretStr = Field(description="Kept in memory only, sealed like stored secrets.")
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        error = upstream_url_error(value)
        if error:
            raise ValueError(error)
        return value


class SsoSettings(BaseModel):
    """Sign-in at upstream identity providers (organizations' OIDC and SAML connections, social)."""

    social: list[SocialConnectionSettings] = Field(
        default_factory=list,
        description=(
            "Operator-wide OpenID providers offered as buttons on the sign-in page, as JSON, e.g. "
            '[{"id": "google", "name": "Google", "issuer": "https://accounts.google.com", '
            '"client_id": "...", "client_secret": "..."}]. Their redirect URI is {issuer}/sso/oidc/callback.'
        ),
    )
    flow_lifetime: int = Field(600, ge=60, le=3600, description="Seconds a person has to finish at the IdP.")
    clock_skew: int = Field(90, ge=0, le=300, description="Seconds of clock difference allowed with an IdP.")
    http_timeout: float = Field(10.0, gt=0, le=60, description="Seconds an IdP has to answer a request.")


class AccountSettings(BaseModel):
    """People's control over their own account."""

    deletion_grace: int = Field(
        7 * 86400,
        ge=0,
        le=90 * 86400,
        description=(
            "Seconds between a deletion request and the erasure of the account's data; signing in again and "
            "confirming within it keeps the account (0: erased at once)."
        ),
    )


class I18nSettings(BaseModel):
    """Languages of the hosted pages and mails (gettext catalogues)."""

    default_language: str = Field(
        "en",
        min_length=2,
        max_length=20,
        description=(
            "Language for people whose request names none that is offered (no `ui_locales`, no picker "
            "choice, no match in Accept-Language); mail sent outside a request is written in it too."
        ),
    )
    catalog_dir: Path | None = Field(
        None,
        description=(
            "Directory of extra catalogues, `<dir>/<code>/LC_MESSAGES/messages.po` (or `.mo`): a new "
            "code adds a language, a shipped one (en, de, es, fr, ar) is reworded by it, its missing "
            "entries falling back to the shipped catalogue."
        ),
    )


class ThemeSettings(BaseModel):
    """Branding of the hosted pages."""

    product_name: str = Field("Threshold", min_length=1, max_length=60, description="Name shown on pages.")
    logo_url: str | None = Field(None, description="URL or path of a logo image shown on the hosted pages.")
    accent_color: str = Field("#3a5bd9", description="CSS #rrggbb colour of buttons and links.")

    @field_validator("accent_color")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise ValueError("must be a #rrggbb colour")
        return value.lower()

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith(("https://", "/")) and '"' not in value):
            raise ValueError("must be an https:// URL or an absolute path")
        return value
