"""The socket under a websocket, for the hub's fast path.

A publication goes to thousands of connections. Through ASGI each delivery is an awaited
``send`` that re-frames the text in the websocket library; here the hub frames it itself (a
server's frames are not masked: a 2-10 byte header before the JSON that was serialised once)
and hands all frames waiting for a connection to its transport in one ``write``.

This is only done where it is exactly what the library would have sent: uvicorn's sans-I/O
websockets protocol (``websockets.ServerProtocol``), the connection open, no extension
negotiated (permessage-deflate would compress frames). Anywhere else (another server, the test
client) the hub uses plain ASGI sends; a transport that can be aborted is still used to drop a
client that stopped reading.
"""

from __future__ import annotations

from typing import Any, Protocol

from websockets.protocol import State

# The ASGI scope key under which the app's middleware leaves the connection's Wire.
WIRE_SCOPE_KEY = "leetgaming.wire"

_TEXT_FIN = 0x81  # FIN bit and opcode 1 (text)


def text_frame_header(length: int) -> bytes:
    """The header of one unmasked, unfragmented text frame of ``length`` payload bytes
    (RFC 6455 section 5.2)."""
    if length < 126:
        return bytes((_TEXT_FIN, length))
    if length < 1 << 16:
        return bytes((_TEXT_FIN, 126)) + length.to_bytes(2, "big")
    return bytes((_TEXT_FIN, 127)) + length.to_bytes(8, "big")


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...

    def abort(self) -> None: ...


class Wire:
    """One websocket connection's transport and, when safe, raw framed writes to it."""

    __slots__ = ("_protocol", "transport")

    def __init__(self, protocol: Any, transport: Transport) -> None:
        self._protocol = protocol
        self.transport = transport

    @classmethod
    def of_send(cls, send: Any) -> Wire | None:
        """The wire behind an ASGI ``send`` callable, if it is a method of a server protocol
        that owns a transport (uvicorn's websocket protocols are)."""
        protocol = getattr(send, "__self__", None)
        transport = getattr(protocol, "transport", None)
        if transport is None or not callable(getattr(transport, "abort", None)):
            return None
        return cls(protocol, transport)

    def framing(self) -> bool:
        """Whether frames written here are exactly what the protocol would send: a
        websockets sans-I/O connection, open, without extensions, not closing."""
        conn = getattr(self._protocol, "conn", None)
        return (
            conn is not None
            and getattr(conn, "state", None) is State.OPEN
            and not getattr(conn, "extensions", True)
            and not getattr(self._protocol, "close_sent", True)
            and not self.transport.is_closing()
        )

    def write_texts(self, payloads: list[bytes]) -> None:
        """Send each UTF-8 JSON payload as one text frame, in order, in one write."""
        parts: list[bytes] = []
        for payload in payloads:
            parts.append(text_frame_header(len(payload)))
            parts.append(payload)
        self.transport.write(b"".join(parts))

    def buffered_bytes(self) -> int:
        """What the transport holds that the kernel has not taken yet."""
        return self.transport.get_write_buffer_size()

    def abort(self) -> None:
        """Close at once, discarding what is buffered."""
        self.transport.abort()
