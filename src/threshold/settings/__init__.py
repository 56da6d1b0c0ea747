"""The one typed Settings object (its sections are in `settings.sections`).

Every option is documented here, once; `threshold config-reference` prints the reference generated
from this schema. Values come from (highest first) environment variables `THRESHOLD_*` (nested with
`__`, e.g. `THRESHOLD_ARGON2__MEMORY_KIB`), the TOML file given with `--config` (or
`THRESHOLD_CONFIG`), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from threshold.settings.sections import (
    ARGON2_MIN_MEMORY_KIB,
    ARGON2_MIN_TIME_COST,
    LOOPBACK_NAMES,
    AccountSettings,
    Argon2Settings,
    BackchannelSettings,
    DnsSettings,
    EmailSettings,
    I18nSettings,
    IPNetwork,
    MfaSettings,
    OidcSettings,
    PasswordSettings,
    RateLimitSettings,
    SessionSettings,
    SocialConnectionSettings,
    SsoSettings,
    ThemeSettings,
    WebAuthnSettings,
)


class Settings(BaseSettings):
    """Threshold configuration."""

    model_config = SettingsConfigDict(
        env_prefix="THRESHOLD_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    issuer: str = Field(
        "http://localhost:8400",
        description=(
            "Public base URL of this service (scheme, host, port, path); links, cookies and passkeys use it "
            "(passkeys need a host name: use localhost, not 127.0.0.1, on a workstation)."
        ),
    )
    data_dir: Path = Field(
        Path("./var"), description="Directory for the embedded database and generated keys."
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL: postgresql://user@host/db or sqlite:///path. "
            "Default: SQLite file threshold.db in data_dir."
        ),
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        description="Connections per process (PostgreSQL; on SQLite, those of the fast path's threads).",
    )
    redis_url: str | None = Field(
        None, description="redis://host:port/db ; when set, sessions and rate limits live in Redis."
    )
    redis_key_prefix: str = Field("threshold:", max_length=64, description="Prefix of every Redis key.")
    key_encryption_key: str | None = Field(
        None,
        description="Base64url 32-byte key for secrets at rest. Default: generated in data_dir/kek (0600).",
        repr=False,
    )
    trusted_proxies: list[IPNetwork] = Field(
        default_factory=list,
        description="Proxies whose X-Forwarded-For is believed (addresses or CIDR networks).",
    )
    signup_enabled: bool = Field(True, description="Whether anyone may create an account.")
    smtp_url: str | None = Field(
        None,
        description=(
            "Outgoing mail: smtp://user:pass@host:587?starttls=true or smtps://user:pass@host:465. "
            "Unset: mail stays in the local outbox (shown at /dev/outbox in development mode)."
        ),
        repr=False,
    )
    mail_from: str | None = Field(
        None, description="From address of outgoing mail (default: no-reply@ the issuer's host)."
    )
    development: bool = Field(False, description="Development mode (never in production).")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log verbosity.")
    access_log: bool = Field(
        True,
        description=(
            "One line per request on the threshold.access logger (level info): method, path without the "
            "query string, status, duration, request id and client address; the request id is also sent "
            "back in the X-Request-Id header."
        ),
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024, description="Largest request body.")
    metrics_token: str | None = Field(
        None,
        min_length=16,
        description=(
            "Bearer token that GET /metrics requires (`Authorization: Bearer <token>`, compared in constant "
            "time). Unset: /metrics is served only when the issuer is a loopback URL (a workstation, "
            "`make run`), and answers 404 anywhere else."
        ),
        repr=False,
    )
    metrics_listen: str | None = Field(
        None,
        description=(
            "A second address, `host:port`, on which `threshold serve` answers GET /metrics without the "
            "token (e.g. `127.0.0.1:9464`; `0.0.0.0:9464` for a scraper on another host of a private "
            "network): every other path is not found there, and the main address still serves /metrics "
            "only as THRESHOLD_METRICS_TOKEN says. With --workers N the answer adds up every worker."
        ),
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description=(
            "`json`: every log line is one JSON object (time, level, logger, message; the access log adds "
            "method, path, status, duration_ms, request_id, client_ip and user_id when the request's "
            "session or token named one). No line carries a password, cookie, code or token."
        ),
    )
    otel_enabled: bool = Field(
        False,
        description=(
            "OpenTelemetry traces: a server span per request with its database and Redis calls as "
            "children (statements without their parameters, URLs without their query strings), exported "
            "over OTLP/HTTP as the standard OTEL_EXPORTER_OTLP_* and OTEL_SERVICE_NAME variables say. "
            "Needs the `otel` extra (`pip install 'threshold[otel]'`)."
        ),
    )

    argon2: Argon2Settings = Field(default_factory=Argon2Settings)
    password: PasswordSettings = Field(default_factory=PasswordSettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    mfa: MfaSettings = Field(default_factory=MfaSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    webauthn: WebAuthnSettings = Field(default_factory=WebAuthnSettings)
    theme: ThemeSettings = Field(default_factory=ThemeSettings)
    i18n: I18nSettings = Field(default_factory=I18nSettings, description="Languages of pages and mails.")
    account: AccountSettings = Field(default_factory=AccountSettings, description="Account deletion.")
    dns: DnsSettings = Field(default_factory=DnsSettings, description="DNS lookups (domain verification).")
    sso: SsoSettings = Field(default_factory=SsoSettings, description="Upstream identity providers.")
    backchannel: BackchannelSettings = Field(
        default_factory=BackchannelSettings, description="Logout tokens to applications."
    )

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0]
        if scheme not in (
            "sqlite",
            "sqlite+aiosqlite",
            "postgresql",
            "postgres",
            "postgresql+asyncpg",
        ):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, value: str | None) -> str | None:
        if value:
            host_port(value)
        return value or None

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("smtp://", "smtps://")):
            raise ValueError("must be an smtp:// or smtps:// URL")
        return value or None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value or None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("THRESHOLD_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def issuer_origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def allowed_origins(self) -> frozenset[str]:
        """Origins whose state-changing requests are ours. A loopback issuer also accepts its other
        loopback names (localhost, 127.0.0.1, [::1]) on the same port: they are the same machine."""
        parts = urlsplit(self.issuer)
        if parts.hostname not in LOOPBACK_NAMES:
            return frozenset({self.issuer_origin})
        port = f":{parts.port}" if parts.port else ""
        return frozenset(f"{parts.scheme}://{host}{port}" for host in ("localhost", "127.0.0.1", "[::1]"))

    @property
    def webauthn_rp_id(self) -> str:
        return self.webauthn.rp_id or (urlsplit(self.issuer).hostname or "localhost")

    @property
    def webauthn_origins(self) -> list[str]:
        return self.webauthn.origins or [self.issuer_origin]

    @property
    def sender(self) -> str:
        if self.mail_from:
            return self.mail_from
        return f"{self.theme.product_name} <no-reply@{urlsplit(self.issuer).hostname or 'localhost'}>"

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """(host, port) of `metrics_listen`, if set."""
        return host_port(self.metrics_listen) if self.metrics_listen else None

    @property
    def is_https(self) -> bool:
        return self.issuer.startswith("https://")

    @property
    def effective_database_url(self) -> str:
        """The SQLAlchemy async URL actually used."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'threshold.db').resolve()}"
        for prefix, driver in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
        ):
            if url.startswith(prefix):
                return driver + url[len(prefix) :]
        return url


def host_port(value: str) -> tuple[str, int]:
    """`host:port` (an IPv6 address in brackets) as (host, port); ValueError when it is not one."""
    parts = urlsplit(f"//{value}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or port == 0 or parts.path or parts.username or parts.query:
        raise ValueError("must be host:port, such as 127.0.0.1:9464 or [::1]:9464")
    return parts.hostname, port


class ConfigurationError(Exception):
    """Invalid configuration; the message names each offending setting."""


def _env_name(location: tuple[int | str, ...]) -> str:
    return "THRESHOLD_" + "__".join(str(part).upper() for part in location)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the Settings object, turning validation errors into a readable ConfigurationError."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigurationError(f"--config: no such file: {path}")
        os.environ["THRESHOLD_CONFIG"] = str(path.resolve())
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [
            f"{_env_name(err['loc'])}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    except ValueError as exc:  # e.g. a malformed TOML file
        raise ConfigurationError(f"invalid configuration: {exc}") from None


__all__ = [
    "ARGON2_MIN_MEMORY_KIB",
    "ARGON2_MIN_TIME_COST",
    "LOOPBACK_NAMES",
    "AccountSettings",
    "Argon2Settings",
    "BackchannelSettings",
    "ConfigurationError",
    "DnsSettings",
    "EmailSettings",
    "IPNetwork",
    "MfaSettings",
    "OidcSettings",
    "PasswordSettings",
    "RateLimitSettings",
    "SessionSettings",
    "Settings",
    "SocialConnectionSettings",
    "SsoSettings",
    "ThemeSettings",
    "WebAuthnSettings",
    "load_settings",
]
