from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leetgaming.logs import configure_logging, is_secret_key, redact_text, redact_value

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Configure logging into a buffer; give a function returning the parsed lines."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    watched = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved_uvicorn = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in watched
    }
    stream = io.StringIO()
    configure_logging("debug", stream=stream)

    def lines() -> list[dict[str, Any]]:
        raw = stream.getvalue().splitlines()
        return [orjson.loads(line) for line in raw]

    try:
        yield lines
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        for name, (handlers, propagate) in saved_uvicorn.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate
        logging.getLogger("uvicorn.access").disabled = False


def test_one_json_object_per_line_with_the_standard_fields(log_lines: LogLines) -> None:
    logging.getLogger("leetgaming.test").info("hello %s", "world", extra={"match_id": 42})
    logging.getLogger("leetgaming.test").warning("second\nline")
    first, second = log_lines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["level"] == "info"
    assert first["logger"] == "leetgaming.test"
    assert first["msg"] == "hello world"
    assert first["match_id"] == 42
    assert second["level"] == "warning"
    assert second["msg"] == "second\nline"


def test_the_level_filters(log_lines: LogLines) -> None:
    stream = io.StringIO()
    configure_logging("warning", stream=stream)
    logging.getLogger("leetgaming.test").info("quiet")
    logging.getLogger("leetgaming.test").error("loud")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["loud"]


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level 'trace'"):
        configure_logging("trace")


def test_secret_named_fields_are_hidden(log_lines: LogLines) -> None:
    logging.getLogger("leetgaming.test").info(
        "login",
        extra={
            "password": "hunter2",
            "api_key": "ak_live_123",
            "authorization": "Basic dXNlcjpwYXNz",
            "refresh_token": "rt-abc",
            "cookie": "session=abc",
            "secret_key": "k" * 40,
            "details": {"client_secret": "cs-xyz", "player": "p1", "keys": ["a"]},
            "player_id": "p1",
        },
    )
    (line,) = log_lines()
    text = orjson.dumps(line).decode()
    for secret in ("hunter2", "ak_live_123", "dXNlcjpwYXNz", "rt-abc", "session=abc", "cs-xyz"):
        assert secret not in text
    assert line["password"] == "***"
    assert line["secret_key"] == "***"
    assert line["details"]["client_secret"] == "***"
    assert line["details"]["player"] == "p1"
    assert line["player_id"] == "p1"


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("connecting to postgresql://lg:dbpass@db:5432/lg", "dbpass"),
        ("redis at redis://:redispass@cache:6379/0 is down", "redispass"),
        ("header Authorization: Bearer abcdef0123456789xyz", "abcdef0123456789xyz"),
        ("GET /callback?code=1&access_token=tok123&x=2", "tok123"),
        ('{"password": "pw-in-json"}', "pw-in-json"),
        (f"token was {JWT} and it expired", JWT),
        ("player alice@example.com signed up", "alice@example.com"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("server key lgsk_0a1b2c3d_Zq9xWv8uTs7rQp6o", "lgsk_0a1b2c3d_Zq9xWv8uTs7rQp6o"),
        ("device dv1.AAECAwQFBgcICQoLDA0ODw.Q2V0dGVUYWdFc3RVbmVTaWduYXR1cmU", "Q2V0dGVUYWdF"),
    ],
)
def test_secrets_in_messages_are_redacted(log_lines: LogLines, message: str, secret: str) -> None:
    logging.getLogger("leetgaming.test").info(message)
    logging.getLogger("leetgaming.test").info("%s", message)  # through args as well
    lines = log_lines()
    assert len(lines) == 2
    for line in lines:
        assert secret not in line["msg"]
        assert "***" in line["msg"]


def test_a_traceback_is_logged_redacted(log_lines: LogLines) -> None:
    try:
        raise ConnectionError("cannot reach postgresql://lg:dbpass@db/lg for bob@example.com")
    except ConnectionError:
        logging.getLogger("leetgaming.test").exception("database down")
    (line,) = log_lines()
    assert line["level"] == "error"
    assert "ConnectionError" in line["exc"]
    assert "Traceback" in line["exc"]
    assert "dbpass" not in line["exc"]
    assert "bob@example.com" not in line["exc"]


def test_uvicorn_logs_go_through_the_same_handler(log_lines: LogLines) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1234)
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /x?token=abc HTTP/1.1" 200')
    lines = log_lines()
    assert [line["logger"] for line in lines] == ["uvicorn.error"]
    assert lines[0]["msg"] == "Started server process [1234]"
    assert logging.getLogger("uvicorn").handlers == []
    assert logging.getLogger("uvicorn").propagate is True


def test_ordinary_text_is_left_alone() -> None:
    text = "match 12 finished: team a 16, team b 14 on de_dust2 (leetgaming.settings)"
    assert redact_text(text) == text
    assert redact_text("postgresql://lg@db:5432/lg") == "postgresql://lg@db:5432/lg"


def test_secret_key_names() -> None:
    for name in ("password", "db_password", "secret", "token", "Authorization", "api_key"):
        assert is_secret_key(name), name
    for name in ("cookie", "key", "secret_key", "private_key", "apiKey"):
        assert is_secret_key(name), name
    for name in ("player_id", "status", "method", "path", "route", "duration_ms", "msg"):
        assert not is_secret_key(name), name


def test_redact_value_keeps_numbers_and_structure() -> None:
    assert redact_value({"a": 1, "b": [True, None, 2.5], "token": None}) == {
        "a": 1,
        "b": [True, None, 2.5],
        "token": None,
    }


_local = st.from_regex(r"[a-z][a-z0-9._+-]{0,15}", fullmatch=True)
_domain = st.from_regex(r"[a-z][a-z0-9-]{0,10}\.(com|org|io|gg)", fullmatch=True)


@given(local=_local, domain=_domain, before=st.sampled_from(["", "user ", "to: ", "("]))
def test_any_email_address_is_redacted(local: str, domain: str, before: str) -> None:
    email = f"{local}@{domain}"
    assert email not in redact_text(f"{before}{email} joined")


@given(password=st.from_regex(r"[A-Za-z0-9!#$%^&*()_+=~-]{1,30}", fullmatch=True))
def test_any_url_password_is_redacted(password: str) -> None:
    # Exactly the mask is left (a password that is itself "***" is masked all the same).
    assert redact_text(f"dsn=postgresql://lg:{password}@db:5432/lg") == (
        "dsn=postgresql://lg:***@db:5432/lg"
    )
