"""Source RCON over TCP: how we tell a CS2 server to load a match (and check it is alive).

A packet is ``size`` (little-endian int32: the bytes after it), ``id``, ``type`` (int32 each),
a NUL-terminated ASCII body and one more NUL. ``SERVERDATA_AUTH`` (3) carries the password and
is answered by ``SERVERDATA_AUTH_RESPONSE`` (2) with the same id, or id -1 when refused;
``SERVERDATA_EXECCOMMAND`` (2) runs a command, answered by ``SERVERDATA_RESPONSE_VALUE`` (0)
packets. A long answer spans several packets, so each command is followed by an empty
RESPONSE_VALUE probe, whose echo marks the end.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Final

AUTH: Final = 3
AUTH_RESPONSE: Final = 2
EXECCOMMAND: Final = 2
RESPONSE_VALUE: Final = 0
PACKET_BYTES_MAX: Final = 4096 + 4  # the protocol's size cap, and the size field itself
RESPONSE_BYTES_MAX: Final = 256 * 1024
RCON_TIMEOUT_S: Final = 5.0


class RconError(Exception):
    """The server could not be reached, refused the password, or broke the protocol."""


def packet(request_id: int, kind: int, body: str) -> bytes:
    data = body.encode("utf-8") + b"\x00\x00"
    if len(data) + 8 > PACKET_BYTES_MAX - 4:
        raise RconError("command too long for one RCON packet")
    return struct.pack("<iii", len(data) + 8, request_id, kind) + data


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, str]:
    (size,) = struct.unpack("<i", await reader.readexactly(4))
    if not 10 <= size <= PACKET_BYTES_MAX - 4:
        raise RconError(f"bad RCON packet size {size}")
    payload = await reader.readexactly(size)
    request_id, kind = struct.unpack("<ii", payload[:8])
    return request_id, kind, payload[8:-2].decode("utf-8", "replace")


async def command(
    host: str, port: int, password: str, line: str, timeout_s: float = RCON_TIMEOUT_S
) -> str:
    """Run one console command; its output."""
    try:
        return await asyncio.wait_for(_command(host, port, password, line), timeout_s)
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
        raise RconError(f"RCON to {host}:{port} failed: {type(exc).__name__}") from None


async def _command(host: str, port: int, password: str, line: str) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(packet(1, AUTH, password))
        await writer.drain()
        while True:  # some servers send an empty RESPONSE_VALUE before the auth answer
            request_id, kind, _ = await read_packet(reader)
            if kind == AUTH_RESPONSE:
                break
        if request_id == -1:
            raise RconError("RCON password refused")
        writer.write(packet(2, EXECCOMMAND, line) + packet(3, RESPONSE_VALUE, ""))
        await writer.drain()
        out: list[str] = []
        size = 0
        while True:
            request_id, kind, body = await read_packet(reader)
            if request_id == 3:
                return "".join(out)
            if request_id == 2 and kind == RESPONSE_VALUE:
                size += len(body)
                if size > RESPONSE_BYTES_MAX:
                    raise RconError("RCON answer too long")
                out.append(body)
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


def quoted(value: str) -> str:
    """A console argument in double quotes (the console has no escape for ``"``)."""
    if any(c in value for c in '"\n\r;\x00'):
        raise RconError("a console argument cannot hold quotes, newlines or ';'")
    return f'"{value}"'
