"""Fixtures of the composition root's tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..ws import unused_port


@pytest.fixture(scope="session")
def localstripe() -> Iterator[str]:
    """A localstripe server for this test session; its URL."""
    port = unused_port()
    script = Path(__file__).resolve().parents[2] / "scripts" / "localstripe_server.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, "localstripe exited at start"
            assert time.monotonic() < deadline, "localstripe did not listen within 20 s"
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
