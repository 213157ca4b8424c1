"""Run the demo parser in its own process, with a time and CPU limit: a large or hostile
file costs that process, never the server's event loop."""

from __future__ import annotations

import asyncio
import json
import math
import resource
import signal
import sys
from typing import Any, Final

PARSE_TIMEOUT_S: Final = 120.0
PARSE_OUTPUT_BYTES_MAX: Final = 8 * 1024 * 1024


class ParseFailed(Exception):
    """The parser's process did not give an answer (timeout, crash, garbage)."""


def _limits(cpu_s: int) -> None:  # in the child, before the parser starts
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))


async def parse_demo(path: str, timeout_s: float = PARSE_TIMEOUT_S) -> dict[str, Any]:
    """The parser's JSON for the demo at ``path``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "replays.parse",
        path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=lambda: _limits(max(1, math.ceil(timeout_s))),
    )
    try:
        out = await asyncio.wait_for(process.stdout.read(PARSE_OUTPUT_BYTES_MAX), timeout_s)  # type: ignore[union-attr]
        code = await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ParseFailed(f"the parser took more than {timeout_s:.0f} s") from None
    except BaseException:  # cancelled (the server stopping): the parser goes too
        process.kill()
        raise
    if code == -signal.SIGXCPU:
        raise ParseFailed(f"the parser used more than {timeout_s:.0f} s of CPU")
    if code != 0:
        raise ParseFailed(f"the parser exited with {code}")
    try:
        answer = json.loads(out)
    except ValueError:
        raise ParseFailed("the parser's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ParseFailed("the parser's answer is not an object")
    return answer
