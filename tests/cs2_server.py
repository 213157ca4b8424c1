"""A stand-in for a CS2 dedicated server running get5 or MatchZy, as far as we talk to it.

CS2 servers cannot run here, so this speaks their real protocols: Source RCON over TCP (the
password, ``<flavor>_loadmatch_url "<url>" "<header>" "<value>"``, ``status``), the
plugin's HTTP GET of the match config with that header, and the plugin's event log: every
body POSTed to the config's ``<flavor>_remote_log_url`` with its header.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import struct
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from leetgaming.rcon import AUTH, AUTH_RESPONSE, EXECCOMMAND, RESPONSE_VALUE, packet, read_packet


@dataclass
class FakeCs2Server:
    flavor: str
    password: str
    http: httpx.AsyncClient
    configs: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    commands: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None
    alive: bool = True
    fetch: bool = True  # False: take the load command without fetching the config
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_id, kind, body = await read_packet(reader)
            if kind != AUTH:
                return
            ok = body == self.password and self.alive
            writer.write(packet(request_id if ok else -1, AUTH_RESPONSE, ""))
            await writer.drain()
            if not ok:
                return
            while True:
                request_id, kind, body = await read_packet(reader)
                if kind == EXECCOMMAND:
                    answer = await self._run(body)
                    writer.write(packet(request_id, RESPONSE_VALUE, answer))
                else:  # the client's end-of-answer probe: echoed
                    writer.write(packet(request_id, RESPONSE_VALUE, ""))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, struct.error):
            pass
        finally:
            writer.close()

    async def _run(self, line: str) -> str:
        self.commands.append(line)
        words = shlex.split(line)
        if words and words[0] == f"{self.flavor}_loadmatch_url" and len(words) == 4:
            _, url, header, value = words
            if not self.fetch:
                return "Loading match config"
            answer = await self.http.get(url, headers={header: value})
            if answer.status_code != 200:
                return f"failed to load the match config: HTTP {answer.status_code}"
            self.config = answer.json()
            await self.configs.put(self.config)
            return "Loading match config"
        if words == ["status"]:
            return "hostname: stand-in\nversion : 1.40.0.0\nplayers : 2 humans, 0 bots"
        return f"Unknown command '{words[0] if words else ''}'"

    def cvar(self, name: str) -> str:
        assert self.config is not None, "no match loaded"
        return str(self.config["cvars"][f"{self.flavor}_{name}"])

    async def send(self, body: dict[str, Any] | bytes) -> httpx.Response:
        """One event to the remote log, as the plugin posts it."""
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.http.post(
            self.cvar("remote_log_url"),
            content=content,
            headers={
                self.cvar("remote_log_header_key"): self.cvar("remote_log_header_value"),
                "Content-Type": "application/json",
            },
        )
