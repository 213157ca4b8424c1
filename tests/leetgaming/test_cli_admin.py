"""``leetgaming admin create``: the only way to make an admin (no HTTP endpoint does)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from leetgaming.db import open_database
from leetgaming.identity import KEY_PROPAGATION_S, Identity
from leetgaming.mail import FolderMailer
from leetgaming.passwords import Passwords
from leetgaming.tokens import INITIAL_KID

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


def test_keys_rotate_schedules_a_key_every_process_signs_with_soon(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEETGAMING_")}
    env["LEETGAMING_DATABASE_URL"] = f"sqlite:///{tmp_path}/lg.sqlite3"
    env["LEETGAMING_SECRET_KEY"] = "r" * 40

    def rotate() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "leetgaming", "keys", "rotate"]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    done = rotate()
    assert done.returncode == 0, done.stderr
    kid = done.stdout.split()[2]
    assert "r" * 40 not in done.stdout + done.stderr
    again = rotate()
    assert again.returncode == 1 and "not current yet" in again.stderr

    async def signing_kid(at_s: int) -> str:
        db = await open_database(env["LEETGAMING_DATABASE_URL"])
        try:
            identity = Identity(
                db, Passwords(), FolderMailer(tmp_path), lambda: at_s, "http://x", "r" * 40
            )
            await identity.start()
            return identity.keyring.current(at_s)
        finally:
            await db.close()

    now = int(time.time())
    assert asyncio.run(signing_kid(now)) == INITIAL_KID
    assert asyncio.run(signing_kid(now + KEY_PROPAGATION_S + 5)) == kid
