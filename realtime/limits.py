"""Per-connection limits as small pure structures: a token bucket and a byte-bounded queue."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved; time comes in as ``now_s``."""

    rate_per_s: float
    burst: float
    tokens: float = -1.0
    updated_s: float = 0.0

    def take(self, now_s: float, cost: float = 1.0) -> bool:
        if self.tokens < 0:  # first use: a full bucket
            self.tokens, self.updated_s = self.burst, now_s
        elapsed = max(0.0, now_s - self.updated_s)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_s)
        self.updated_s = now_s
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True


@dataclass(slots=True)
class SendQueue:
    """Frames waiting for one connection's socket, bounded in bytes.

    ``push`` refuses a frame that would take the queue over ``bytes_max``: the caller then
    disconnects the client (slow consumer) instead of buffering without bound or making the
    publisher wait. The same ``bytes`` object may sit in thousands of queues: frames are never
    copied.
    """

    bytes_max: int
    frames: deque[bytes] = field(default_factory=deque)
    size_bytes: int = 0

    def push(self, frame: bytes) -> bool:
        if self.size_bytes + len(frame) > self.bytes_max:
            return False
        self.frames.append(frame)
        self.size_bytes += len(frame)
        return True

    def take_all(self) -> list[bytes]:
        frames = list(self.frames)
        self.frames.clear()
        self.size_bytes = 0
        return frames

    def pop(self) -> bytes | None:
        if not self.frames:
            return None
        frame = self.frames.popleft()
        self.size_bytes -= len(frame)
        return frame
