"""Settings: environment variables, the TOML file, and errors that name the setting to fix."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from threshold.settings import ConfigurationError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("THRESHOLD_"):
            monkeypatch.delenv(name)
    yield
    os.environ.pop("THRESHOLD_CONFIG", None)  # load_settings(config_file=...) sets it


def config_error(**env: str) -> str:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        with pytest.raises(ConfigurationError) as caught:
            load_settings()
    return str(caught.value)


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings()
    assert settings.issuer == "http://localhost:8400"
    assert settings.argon2.memory_kib == 19456 and settings.argon2.time_cost == 2
    assert settings.password.min_length == 15 and settings.password.max_length == 128
    assert settings.trusted_proxies == []
    assert settings.signup_enabled is True
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRESHOLD_ISSUER", "https://auth.example.com/")
    monkeypatch.setenv("THRESHOLD_ARGON2__MEMORY_KIB", "65536")
    monkeypatch.setenv("THRESHOLD_SESSION__IDLE_TIMEOUT", "1800")
    monkeypatch.setenv("THRESHOLD_SIGNUP_ENABLED", "false")
    monkeypatch.setenv("THRESHOLD_TRUSTED_PROXIES", '["10.0.0.0/8", "2001:db8::1"]')
    monkeypatch.setenv("THRESHOLD_DATABASE_URL", "postgresql://app@db.internal/threshold")
    settings = load_settings()
    assert settings.issuer == "https://auth.example.com"
    assert settings.issuer_origin == "https://auth.example.com"
    assert settings.argon2.memory_kib == 65536
    assert settings.argon2.time_cost == 2  # untouched siblings keep their defaults
    assert settings.session.idle_timeout == 1800
    assert settings.signup_enabled is False
    assert settings.trusted_proxies == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::1/128"),
    ]
    assert settings.effective_database_url == "postgresql+asyncpg://app@db.internal/threshold"


def test_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "threshold.toml"
    config.write_text(
        'issuer = "https://login.example.org"\n'
        "signup_enabled = false\n"
        "[argon2]\nmemory_kib = 32768\ntime_cost = 3\n"
        '[theme]\nproduct_name = "Example Login"\n'
    )
    settings = load_settings(config_file=config)
    assert settings.issuer == "https://login.example.org"
    assert settings.signup_enabled is False
    assert settings.argon2.memory_kib == 32768 and settings.argon2.time_cost == 3
    assert settings.theme.product_name == "Example Login"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "threshold.toml"
    config.write_text('issuer = "https://login.example.org"\n[argon2]\nmemory_kib = 32768\ntime_cost = 3\n')
    monkeypatch.setenv("THRESHOLD_ISSUER", "https://env.example.org")
    monkeypatch.setenv("THRESHOLD_ARGON2__MEMORY_KIB", "65536")
    settings = load_settings(config_file=config)
    assert settings.issuer == "https://env.example.org"
    assert settings.argon2.memory_kib == 65536
    assert settings.argon2.time_cost == 3  # the file's other value in the same table survives


def test_keyword_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRESHOLD_ISSUER", "https://env.example.org")
    assert load_settings(issuer="https://kw.example.org").issuer == "https://kw.example.org"


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigurationError) as caught:
        load_settings(config_file=missing)
    assert str(missing) in str(caught.value)
    assert "THRESHOLD_CONFIG" not in os.environ


def test_malformed_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("issuer = \n[argon2\n")
    with pytest.raises(ConfigurationError):
        load_settings(config_file=config)


def test_invalid_value_in_the_file_is_named_like_its_env_var(tmp_path: Path) -> None:
    config = tmp_path / "weak.toml"
    config.write_text("[argon2]\nmemory_kib = 1024\n")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(config_file=config)
    assert "THRESHOLD_ARGON2__MEMORY_KIB" in str(caught.value)


def test_unknown_setting_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text('isuer = "https://auth.example.com"\n')
    with pytest.raises(ConfigurationError) as caught:
        load_settings(config_file=config)
    assert "THRESHOLD_ISUER" in str(caught.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"THRESHOLD_ARGON2__MEMORY_KIB": "19455"}, "THRESHOLD_ARGON2__MEMORY_KIB"),
        ({"THRESHOLD_ARGON2__MEMORY_KIB": "lots"}, "THRESHOLD_ARGON2__MEMORY_KIB"),
        ({"THRESHOLD_ARGON2__TIME_COST": "1"}, "THRESHOLD_ARGON2__TIME_COST"),
        ({"THRESHOLD_ISSUER": "ftp://auth.example.com"}, "THRESHOLD_ISSUER"),
        ({"THRESHOLD_ISSUER": "auth.example.com"}, "THRESHOLD_ISSUER"),
        ({"THRESHOLD_ISSUER": "https://auth.example.com/?next=x"}, "THRESHOLD_ISSUER"),
        ({"THRESHOLD_DATABASE_URL": "mysql://root@db/threshold"}, "THRESHOLD_DATABASE_URL"),
        ({"THRESHOLD_REDIS_URL": "http://cache:6379"}, "THRESHOLD_REDIS_URL"),
        ({"THRESHOLD_PASSWORD__MIN_LENGTH": "6"}, "THRESHOLD_PASSWORD__MIN_LENGTH"),
        ({"THRESHOLD_PASSWORD__MAX_LENGTH": "32"}, "THRESHOLD_PASSWORD__MAX_LENGTH"),
        ({"THRESHOLD_RATE_LIMIT__LOGIN_PER_ACCOUNT": "100"}, "THRESHOLD_RATE_LIMIT__LOGIN_PER_ACCOUNT"),
        ({"THRESHOLD_TRUSTED_PROXIES": '["not-a-network"]'}, "THRESHOLD_TRUSTED_PROXIES"),
        ({"THRESHOLD_THEME__ACCENT_COLOR": "red"}, "THRESHOLD_THEME__ACCENT_COLOR"),
    ],
)
def test_invalid_value_names_the_env_var(env: dict[str, str], named: str) -> None:
    message = config_error(**env)
    assert named in message
    assert message.startswith("invalid configuration")


def test_idle_timeout_longer_than_absolute_lifetime() -> None:
    message = config_error(
        THRESHOLD_SESSION__IDLE_TIMEOUT="100000", THRESHOLD_SESSION__ABSOLUTE_LIFETIME="1000"
    )
    assert "THRESHOLD_SESSION__IDLE_TIMEOUT" in message
    assert "THRESHOLD_SESSION__ABSOLUTE_LIFETIME" in message


def test_every_error_is_listed_at_once() -> None:
    message = config_error(THRESHOLD_ISSUER="nope", THRESHOLD_ARGON2__MEMORY_KIB="1")
    assert "THRESHOLD_ISSUER" in message and "THRESHOLD_ARGON2__MEMORY_KIB" in message


def test_key_encryption_key_is_kept_out_of_repr() -> None:
    settings = Settings(key_encryption_key="tDqVbA6vVq5Wc9TR9nzdcXWZ5Zb0qf1l3p0k6VKw0Ro")
    assert "tDqVbA6vVq5Wc9TR9nzdcXWZ5Zb0qf1l3p0k6VKw0Ro" not in repr(settings)
