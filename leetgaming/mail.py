"""Outgoing mail (address verification, notices): a port with a folder adapter.

:class:`FolderMailer` writes each message as an RFC 5322 ``.eml`` file into a folder (the
embedded default, ``./var/mail``; a developer opens them there). Message bodies hold links with
single-use tokens, so they go to the mailer only, never to a log. A production deployment plugs
an SMTP or provider adapter into the same port.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

SENDER = "LeetGaming <no-reply@leetgaming.invalid>"


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


class FolderMailer:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = SENDER
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        await asyncio.to_thread(self._write, message.as_bytes())

    def _write(self, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.eml"
        temporary = self.folder / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.folder / name)  # readers never see half a message
