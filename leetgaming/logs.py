"""Structured JSON logs, one object per line on stderr, with secrets and personal data removed.

Invariants:

- Every record that reaches the root handler, ours or a library's (uvicorn, asyncpg, ...),
  is written as one JSON object on one line: ``ts``, ``level``, ``logger``, ``msg``, then the
  record's extra fields, then ``exc`` when there is a traceback.
- Before it is written, a record passes :class:`RedactingFilter`: the values of fields named
  like a secret (password, secret, token, authorization, api_key, cookie, key, ...) become
  ``***``; in every string (the message, extra values, the traceback) passwords in URLs,
  bearer tokens, ``password=...``-style pairs, JWT-looking strings and email addresses
  are replaced. Redaction may over-redact; it must never under-redact.
- uvicorn's own access log is off (it would print query strings, where tokens travel);
  :mod:`leetgaming.app` logs each request itself with the path only.
- uvicorn's other lines (``uvicorn.error``: a websocket's ``<peer> - "WebSocket <url>"
  [accepted]`` at info; websockets' request line and headers at debug) name a peer by its
  network only (``203.0.113.0/24``, as the security log does), lose the query string, and
  hide the value of a header that carries a credential or a client's address.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import IO, Any, Final

import orjson

from leetgaming.security import network_of
from leetgaming.settings import REDACTED, redact_url

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message", "taskName"}
)

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|authori[sz]ation|api[_-]?key|apikey|cookie"
    r"|credential|session|signature|private|(^|[_\-.])key($|[_\-.])|^key|key$",
    re.IGNORECASE,
)
# "Bearer <token>", "Basic <base64>" (as in an Authorization header).
_BEARER = re.compile(r"\b(bearer|basic|digest)(\s+)[A-Za-z0-9\-._~+/]{6,}=*", re.IGNORECASE)
_PAIR = re.compile(
    r"\b(?P<key>[A-Za-z_\-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey"
    r"|authorization|cookie|signature))(?P<sep>\"?'?\s*[=:]\s*\"?'?)(?P<value>[^\s&\"',;]+)",
    re.IGNORECASE,
)
# A JWT: three base64url segments, the first one a JSON object ("eyJ" is base64 of '{"').
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
# Three long base64url segments, JWT-shaped even when the header is not a JSON object.
_JWT_SHAPED = re.compile(r"\b[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}\b")
# Our own credentials by their shape: game-server keys and device tokens.
_OURS = re.compile(r"\b(lgsk_[A-Za-z0-9_\-]{8,}|dv1\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})")
# An email address; "//user@host" (a URL's user part) is not one.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-/])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")

LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

# websockets' debug line for each request header (on uvicorn.error), and the headers whose
# value is a client's address (set by a proxy in front)
_HEADER_LINE: Final = "< %s: %s"
_ADDRESS_HEADERS: Final = frozenset(
    {"x-forwarded-for", "x-real-ip", "forwarded", "true-client-ip", "cf-connecting-ip"}
)


def is_secret_key(name: str) -> bool:
    """Whether a field called ``name`` holds a secret and must be logged as ``***``."""
    return _SECRET_KEY.search(name) is not None


def redact_text(text: str) -> str:
    """Remove credentials, tokens and email addresses from free text."""
    text = redact_url(text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _PAIR.sub(lambda m: f"{m.group('key')}{m.group('sep')}{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _JWT_SHAPED.sub(REDACTED, text)
    text = _OURS.sub(REDACTED, text)
    return _EMAIL.sub(REDACTED, text)


def _uvicorn_arg(value: object) -> object:
    """A peer (uvicorn's ``"%s:%d"`` of an address and a port, ``"::1:5000"`` for IPv6) as
    its network, a path without its query string; anything else as it is."""
    if not isinstance(value, str):
        return value
    host, _, port = value.rpartition(":")
    network = network_of(host) if port.isdigit() and len(port) <= 5 else "unknown"
    if network != "unknown":
        return network
    if value.startswith("/") and "?" in value:
        return value.partition("?")[0] + "?" + REDACTED
    return value


def _redact_uvicorn_args(record: logging.LogRecord) -> None:
    """uvicorn's lines (and websockets', on uvicorn's logger) with no peer address, query
    string or credential header in their arguments."""
    if not (record.name == "uvicorn" or record.name.startswith("uvicorn.")):
        return
    if not isinstance(record.args, tuple) or not record.args:
        return
    if record.msg == _HEADER_LINE and len(record.args) == 2:
        name = str(record.args[0]).lower()
        if is_secret_key(name) or name in _ADDRESS_HEADERS:
            record.args = (record.args[0], REDACTED)
        return
    record.args = tuple(_uvicorn_arg(arg) for arg in record.args)


def redact_value(value: object, key: str | None = None) -> object:
    """Redact a structured value: secret-named keys hidden, strings scrubbed, recursively."""
    if key is not None and is_secret_key(key) and value is not None:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact_text(str(value))


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so that nothing secret or personal reaches a handler.

    Attached to the handler, not to a logger, so it sees records propagated from every logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_uvicorn_args(record)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact_text(message)
        record.args = None
        for name in list(vars(record)):
            if name not in _RECORD_ATTRIBUTES:
                setattr(record, name, redact_value(getattr(record, name), name))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        record.exc_info = None
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``msg``, extras, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        millis = int(record.msecs)
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{millis:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in entry:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


def make_handler(stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing redacted JSON lines to ``stream`` (default: stderr)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    return handler


def configure_logging(level: str, *, stream: IO[str] | None = None) -> logging.Handler:
    """Route every log record of the process, uvicorn's included, through one JSON handler.

    ``level`` is one of ``debug``, ``info``, ``warning``, ``error``. Returns the handler.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    handler = make_handler(stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    # Belt and braces: even if someone turns uvicorn's access log back on, drop it.
    logging.getLogger("uvicorn.access").disabled = True
    return handler
