from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leetgaming.settings import DEFAULT_DATABASE_URL, Settings, SettingsError, redact_url

SECRET = "s3cr3t-" + "x" * 40


def test_no_variables_gives_the_embedded_defaults() -> None:
    settings = Settings.from_env({"PATH": "/usr/bin", "HOME": "/root"})
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///./var/leetgaming.sqlite3"
    assert settings.redis_url is None
    assert settings.log_level == "info"
    assert settings.workers == 1
    assert settings.secret_key is None
    assert settings.public_url is None
    assert settings.database_kind == "sqlite"
    assert settings.sqlite_path == "./var/leetgaming.sqlite3"
    assert settings.base_url == "http://127.0.0.1:8000/"


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "LEETGAMING_HOST": "0.0.0.0",
            "LEETGAMING_PORT": "9001",
            "LEETGAMING_DATABASE_URL": "postgresql://lg:pw@db:5432/lg",
            "LEETGAMING_REDIS_URL": "redis://:pw@cache:6379/1",
            "LEETGAMING_LOG_LEVEL": "DEBUG",
            "LEETGAMING_WORKERS": "4",
            "LEETGAMING_SECRET_KEY": SECRET,
            "LEETGAMING_PUBLIC_URL": "https://play.example.com/",
        }
    )
    assert settings == Settings(
        host="0.0.0.0",
        port=9001,
        database_url="postgresql://lg:pw@db:5432/lg",
        redis_url="redis://:pw@cache:6379/1",
        log_level="debug",
        workers=4,
        secret_key=SECRET,
        public_url="https://play.example.com/",
    )
    assert settings.database_kind == "postgresql"
    assert settings.sqlite_path is None
    assert settings.base_url == "https://play.example.com/"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LEETGAMING_PORT", "abc", "LEETGAMING_PORT: expected an integer 1..65535, got 'abc'"),
        ("LEETGAMING_PORT", "0", "LEETGAMING_PORT: expected an integer 1..65535, got '0'"),
        ("LEETGAMING_PORT", "65536", "LEETGAMING_PORT: expected an integer 1..65535, got '65536'"),
        ("LEETGAMING_WORKERS", "0", "LEETGAMING_WORKERS: expected an integer >= 1, got '0'"),
        ("LEETGAMING_WORKERS", "two", "LEETGAMING_WORKERS: expected an integer >= 1, got 'two'"),
        (
            "LEETGAMING_LOG_LEVEL",
            "loud",
            "LEETGAMING_LOG_LEVEL: expected one of debug, info, warning, error, got 'loud'",
        ),
        (
            "LEETGAMING_DATABASE_URL",
            "mysql://db/lg",
            "LEETGAMING_DATABASE_URL: expected a URL starting with sqlite:/// or postgresql:// "
            "or postgres://, got 'mysql://db/lg'",
        ),
        (
            "LEETGAMING_DATABASE_URL",
            "sqlite:///",
            "LEETGAMING_DATABASE_URL: expected a file path after sqlite:///, got none",
        ),
        (
            "LEETGAMING_REDIS_URL",
            "http://cache:6379",
            "LEETGAMING_REDIS_URL: expected a URL starting with redis:// or rediss:// or unix://, "
            "got 'http://cache:6379'",
        ),
        (
            "LEETGAMING_PUBLIC_URL",
            "play.example.com",
            "LEETGAMING_PUBLIC_URL: expected a URL starting with http:// or https://, "
            "got 'play.example.com'",
        ),
        ("LEETGAMING_HOST", "", "LEETGAMING_HOST: expected a host name or IP address, got ''"),
    ],
)
def test_a_bad_variable_is_named_with_its_reason(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert caught.value.problems == [message]
    assert message in str(caught.value)


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "LEETGAMING_PORT": "abc",
                "LEETGAMING_WORKERS": "-1",
                "LEETGAMING_LOG_LEVEL": "verbose",
                "LEETGAMING_HOST": "127.0.0.1",
            }
        )
    reported = [problem.split(":", 1)[0] for problem in caught.value.problems]
    assert sorted(reported) == ["LEETGAMING_LOG_LEVEL", "LEETGAMING_PORT", "LEETGAMING_WORKERS"]


def test_several_workers_need_redis() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"LEETGAMING_WORKERS": "2"})
    assert refused.value.problems == [
        "LEETGAMING_WORKERS: more than 1 needs LEETGAMING_REDIS_URL "
        "(processes share live events through Redis)"
    ]
    assert Settings(workers=2, redis_url="redis://127.0.0.1:6379/0").workers == 2


def test_an_unknown_variable_is_a_typo_not_ignored() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LEETGAMING_DATABSE_URL": "postgresql://db/lg"})
    (problem,) = caught.value.problems
    assert problem.startswith("LEETGAMING_DATABSE_URL: unknown setting (known: ")
    assert "LEETGAMING_DATABASE_URL" in problem


def test_test_suite_variables_are_not_settings() -> None:
    settings = Settings.from_env(
        {
            "LEETGAMING_TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1/postgres",
            "LEETGAMING_TEST_ANYTHING": "x",
        }
    )
    assert settings == Settings()


def test_an_empty_optional_variable_means_unset() -> None:
    assert Settings.from_env({"LEETGAMING_REDIS_URL": ""}).redis_url is None


def test_a_short_secret_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LEETGAMING_SECRET_KEY": "hunter2"})
    assert caught.value.problems == [
        "LEETGAMING_SECRET_KEY: expected at least 32 characters, got 7"
    ]
    assert "hunter2" not in str(caught.value)


def test_a_bad_database_url_is_reported_without_its_password() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LEETGAMING_DATABASE_URL": "mysql://lg:topsecret@db/lg"})
    assert "topsecret" not in str(caught.value)
    assert "mysql://lg:***@db/lg" in str(caught.value)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(SettingsError, match=r"LEETGAMING_PORT: expected an integer 1\.\.65535"):
        Settings(port=70000)


def test_repr_hides_the_secret_key() -> None:
    settings = Settings(secret_key=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


def test_redacted_hides_secrets_and_url_passwords() -> None:
    settings = Settings(
        database_url="postgresql://lg:dbpass@db:5432/lg?sslpassword=certpass",
        redis_url="redis://:redispass@cache:6379/0",
        secret_key=SECRET,
    )
    redacted = settings.redacted()
    text = repr(redacted)
    for secret in ("dbpass", "certpass", "redispass", SECRET):
        assert secret not in text
    assert redacted["database_url"] == "postgresql://lg:***@db:5432/lg?sslpassword=***"
    assert redacted["redis_url"] == "redis://:***@cache:6379/0"
    assert redacted["secret_key"] == "***"
    assert redacted["port"] == 8000
    assert set(redacted) == {f.name for f in dataclasses.fields(Settings)}


def test_redacted_keeps_an_unset_secret_key_visible_as_unset() -> None:
    assert Settings().redacted()["secret_key"] is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("sqlite:///./var/x.sqlite3", "sqlite:///./var/x.sqlite3"),
        ("postgres://u:p/ss@h/db", "postgres://u:***@h/db"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@given(port=st.integers(min_value=1, max_value=65535))
def test_any_valid_port_round_trips(port: int) -> None:
    assert Settings.from_env({"LEETGAMING_PORT": str(port)}).port == port


@given(port=st.integers().filter(lambda p: not 1 <= p <= 65535))
def test_any_out_of_range_port_is_refused(port: int) -> None:
    with pytest.raises(SettingsError, match=r"LEETGAMING_PORT: expected an integer 1\.\.65535"):
        Settings.from_env({"LEETGAMING_PORT": str(port)})


@given(
    password=st.text(
        alphabet=st.characters(
            exclude_characters="@", exclude_categories=("Zs", "Zl", "Zp", "Cc", "Cs")
        ),
        min_size=1,
    )
)
def test_redacted_never_contains_a_url_password(password: str) -> None:
    url = f"postgresql://lg:{password}@db:5432/lg"
    assert redact_url(url) == "postgresql://lg:***@db:5432/lg"


def test_chain_keys_are_checked_and_never_shown() -> None:
    key, seed = "0x" + "7c" * 32, "z" * 40
    settings = Settings(chain_hot_wallet_key=key, chain_address_seed=seed)
    assert key not in repr(settings) and seed not in repr(settings)
    redacted = settings.redacted()
    assert (redacted["chain_hot_wallet_key"], redacted["chain_address_seed"]) == ("***", "***")
    for bad in ("0x" + "7c" * 31, "7c" * 33, "0x" + "zz" * 32, "0x" + "00" * 32):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({"LEETGAMING_CHAIN_HOT_WALLET_KEY": bad})
        assert bad not in str(caught.value)
    with pytest.raises(SettingsError, match="32 to 512"):
        Settings.from_env({"LEETGAMING_CHAIN_ADDRESS_SEED": "short"})
