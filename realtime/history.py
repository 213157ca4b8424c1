"""A channel's stream: offsets, the epoch, bounded history, and the recovery decision.

Pure: no clock (time comes in as ``now_s``), no I/O. The broker adapters (in-process, Redis)
keep the same rules; this is the reference the conformance suite holds them to.

Invariants:

- offsets start at 1 and grow by exactly 1 per publication, within one epoch;
- the epoch names one continuous history; a channel whose history was lost (restart of the
  in-process broker, Redis flushed) gets a new epoch, and nobody recovers across epochs;
- history keeps every publication that is among the last ``history_size_min`` *or* younger than
  ``history_ttl_s_min`` (so the window is at least both), and never more than
  ``history_size_max`` (memory is bounded whatever the rate);
- recovery answers the publications after the client's offset, in order, or ``recovered:
  false`` when any of them is no longer kept or the epoch differs: never a silent gap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

HISTORY_SIZE_MIN = 300
HISTORY_TTL_S_MIN = 120.0
HISTORY_SIZE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    history_size_min: int = HISTORY_SIZE_MIN
    history_ttl_s_min: float = HISTORY_TTL_S_MIN
    history_size_max: int = HISTORY_SIZE_MAX

    def __post_init__(self) -> None:
        if not 0 <= self.history_size_min <= self.history_size_max:
            raise ValueError("history_size_min must be between 0 and history_size_max")
        if self.history_ttl_s_min < 0:
            raise ValueError("history_ttl_s_min must not be negative")


@dataclass(frozen=True, slots=True)
class Publication:
    offset: int
    time_s: float
    payload: bytes  # serialised once, sent as is to every subscriber


@dataclass(frozen=True, slots=True)
class Recovery:
    recovered: bool
    epoch: str
    offset: int  # the channel's latest offset
    publications: tuple[Publication, ...] = ()


@dataclass(slots=True)
class Stream:
    epoch: str
    limits: HistoryLimits = field(default_factory=HistoryLimits)
    offset: int = 0
    history: deque[Publication] = field(default_factory=deque)

    def publish(self, payload: bytes, now_s: float) -> Publication:
        """Append a publication; returns it with its offset."""
        self.offset += 1
        publication = Publication(self.offset, now_s, payload)
        self.history.append(publication)
        self.trim(now_s)
        return publication

    def trim(self, now_s: float) -> None:
        limits = self.limits
        history = self.history
        while len(history) > limits.history_size_max or (
            len(history) > limits.history_size_min
            and now_s - history[0].time_s > limits.history_ttl_s_min
        ):
            history.popleft()

    def recover(self, since_offset: int, since_epoch: str, now_s: float) -> Recovery:
        """What a client that last saw ``since_offset`` of ``since_epoch`` missed."""
        self.trim(now_s)
        if since_epoch != self.epoch or not 0 <= since_offset <= self.offset:
            return Recovery(False, self.epoch, self.offset)
        if since_offset == self.offset:
            return Recovery(True, self.epoch, self.offset)
        oldest = self.history[0].offset if self.history else self.offset + 1
        if since_offset + 1 < oldest:
            return Recovery(False, self.epoch, self.offset)
        missed = tuple(p for p in self.history if p.offset > since_offset)
        return Recovery(True, self.epoch, self.offset, missed)
