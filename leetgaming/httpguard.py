"""The front door: a deadline for a request's headers, and the websocket Origin check.

**Slowloris.**
uvicorn arms no timer on a new connection and cancels its keep-alive timer on every byte
received, so a client that opens a socket and sends a request line one byte at a time (or
nothing at all) holds the connection, and its memory, for as long as it likes; a few thousand
of them exhaust file descriptors, and ``--limit-concurrency`` turns them into a refusal of
everyone else. Here every request must have sent all of its headers within
``REQUEST_HEADERS_TIMEOUT_S`` of its first byte (of the connection's opening, for the first),
or the connection is closed. A websocket handshake is such a request, so half-open handshakes
go the same way. Bodies are not under this deadline: uploads stream, with their own limits.

**Cross-site websocket hijacking.** A browser sends the page's cookies and the Origin header
with a websocket handshake to any site, and neither uvicorn, websockets nor Starlette's CORS
middleware checks the Origin of a websocket. :func:`origin_allowed` accepts the server's own
origin (the Host the client reached) and the configured ones, and refuses every other Origin
and a missing one (every browser sends it; other clients send theirs on purpose).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Final
from urllib.parse import urlsplit

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUEST_HEADERS_TIMEOUT_S: Final = 5.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes a connection whose request headers are not
    complete within :data:`REQUEST_HEADERS_TIMEOUT_S`."""

    headers_timeout_s: float = REQUEST_HEADERS_TIMEOUT_S
    _headers_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_headers_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_headers_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_headers_deadline()  # a later request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._disarm_headers_deadline()
        super().on_headers_complete()

    def _arm_headers_deadline(self) -> None:
        if self._headers_deadline is None:
            self._headers_deadline = self.loop.call_later(
                self.headers_timeout_s, self._headers_timed_out
            )

    def _disarm_headers_deadline(self) -> None:
        if self._headers_deadline is not None:
            self._headers_deadline.cancel()
            self._headers_deadline = None

    def _headers_timed_out(self) -> None:
        self._headers_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def origin_allowed(origin: str | None, host: str | None, allowed: Collection[str]) -> bool:
    """Whether a websocket handshake with this ``Origin`` and ``Host`` comes from a page the
    server trusts: its own (the Origin names the Host the request was sent to) or one of
    ``allowed`` (lower-case ``scheme://host[:port]``)."""
    if not origin:
        return False
    origin = origin.strip().lower()
    if origin in allowed:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and host is not None
        and parts.netloc == host.strip().lower()
        and not parts.path
        and parts.username is None
    )
