"""``leetgaming admin create``: the only way to make an admin (no HTTP endpoint does)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from leetgaming.db import open_database
from leetgaming.identity import Identity
from leetgaming.mail import FolderMailer
from leetgaming.passwords import Passwords

PASSWORD = "an operator's password"


def admin_create(tmp_path: Path, email: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEETGAMING_")}
    env["LEETGAMING_DATABASE_URL"] = f"sqlite:///{tmp_path}/lg.sqlite3"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "leetgaming",
            "admin",
            "create",
            "--email",
            email,
            "--password-stdin",
        ],
        input=password + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_admin_create_makes_an_admin_who_can_sign_in(tmp_path: Path) -> None:
    done = admin_create(tmp_path, "Root@Example.com", PASSWORD)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("admin ") and PASSWORD not in done.stdout + done.stderr

    async def sign_in() -> tuple[str, str]:
        db = await open_database(f"sqlite:///{tmp_path}/lg.sqlite3")
        try:
            identity = Identity(db, Passwords(), FolderMailer(tmp_path), lambda: 0, "http://x")
            await identity.start()
            session = await identity.login("root@example.com", PASSWORD)
            return session.subject, session.role
        finally:
            await db.close()

    subject, role = asyncio.run(sign_in())
    assert role == "admin" and done.stdout.split()[1] == subject

    again = admin_create(tmp_path, "root@example.com", PASSWORD)
    assert again.returncode == 1 and "an account has this email" in again.stderr
    weak = admin_create(tmp_path, "other@example.com", "short")
    assert weak.returncode == 1 and "at least 10 characters" in weak.stderr
