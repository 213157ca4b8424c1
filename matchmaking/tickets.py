"""Where tickets wait: a port with an in-process and a Redis adapter (``redis_tickets.py``).

Rules both adapters keep (one conformance suite checks them):

- A player is in at most one waiting ticket, across every queue: adding a ticket that names a
  player who already waits is refused (``PLAYER_BUSY``) and changes nothing.
- ``claim`` takes the tickets of each proposal out of the queue and records the match, all or
  nothing per proposal, and only while the caller holds the queue's lease with that fencing
  token: a matchmaker that lost its lease (paused, partitioned) cannot claim anything, and a
  ticket can never end up in two matches.
- The lease: one owner per queue at a time, for ``ttl_s``; each new grant carries a fencing
  token larger than every earlier one for that queue.
- ``requeue`` puts tickets back with their original ``waiting_since_s`` (the front of the queue).
- Expiry is data (``expires_s``), applied by ``expire(queue, now_s)``: the store reads no clock.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .matcher import Member, Proposal, Ticket
from .rating import Rating


class AddOutcome(enum.Enum):
    OK = "ok"
    PLAYER_BUSY = "player_busy"  # a member already waits in a ticket
    EXISTS = "exists"  # a ticket with this id waits already


@dataclass(frozen=True, slots=True)
class Waiting:
    queue: str
    ticket: Ticket
    expires_s: float


@dataclass(frozen=True, slots=True)
class ClaimedMatch:
    id: str
    queue: str
    teams: tuple[tuple[Ticket, ...], ...]
    fencing_token: int


def match_id(queue: str, ticket_ids: Sequence[str]) -> str:
    """A deterministic match id: the same tickets in the same queue give the same id."""
    digest = hashlib.sha256("\n".join([queue, *sorted(ticket_ids)]).encode()).hexdigest()
    return digest[:20]


def encode_ticket(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "since": ticket.waiting_since_s,
        "members": [[m.player, m.rating.mu, m.rating.sigma] for m in ticket.members],
    }


def decode_ticket(data: dict[str, Any]) -> Ticket:
    return Ticket(
        str(data["id"]),
        tuple(Member(str(p), Rating(float(mu), float(sigma))) for p, mu, sigma in data["members"]),
        float(data["since"]),
    )


def encode_match(match: ClaimedMatch) -> str:
    return json.dumps(
        {
            "id": match.id,
            "queue": match.queue,
            "fencing_token": match.fencing_token,
            "teams": [[encode_ticket(t) for t in team] for team in match.teams],
        },
        separators=(",", ":"),
    )


def decode_match(text: str | bytes) -> ClaimedMatch:
    data = json.loads(text)
    return ClaimedMatch(
        data["id"],
        data["queue"],
        tuple(tuple(decode_ticket(t) for t in team) for team in data["teams"]),
        int(data["fencing_token"]),
    )


class TicketStore(Protocol):
    async def add(self, queue: str, ticket: Ticket, expires_s: float) -> AddOutcome: ...

    async def cancel(self, ticket_id: str) -> Waiting | None:
        """Take a waiting ticket out; None when it is not waiting (matched, gone)."""
        ...

    async def of_player(self, player: str) -> Waiting | None: ...

    async def set_expiry(self, ticket_id: str, expires_s: float) -> bool: ...

    async def waiting(self, queue: str) -> list[Waiting]:
        """The queue's tickets, oldest first."""
        ...

    async def size(self, queue: str) -> int:
        """How many tickets wait in the queue."""
        ...

    async def expire(self, queue: str, now_s: float) -> list[Waiting]:
        """Take out and return the queue's tickets whose ``expires_s`` has passed."""
        ...

    async def acquire(self, queue: str, owner: str, ttl_s: float) -> int | None:
        """Take or renew the queue's lease; its fencing token, or None when another holds it."""
        ...

    async def release(self, queue: str, owner: str) -> None: ...

    async def claim(
        self, queue: str, fencing_token: int, proposals: Sequence[Proposal]
    ) -> list[ClaimedMatch | None]:
        """Per proposal: the match claimed, or None (a ticket is gone, or the token is stale)."""
        ...

    async def match(self, match_id: str) -> ClaimedMatch | None: ...

    async def requeue(self, queue: str, tickets: Sequence[Ticket], expires_s: float) -> None: ...


class MemoryTicketStore:
    """The embedded adapter (one process; its own clock-free lease bookkeeping)."""

    def __init__(self) -> None:
        self._tickets: dict[str, Waiting] = {}
        self._players: dict[str, str] = {}
        self._leases: dict[str, tuple[str, int]] = {}
        self._tokens: dict[str, int] = {}
        self._matches: dict[str, ClaimedMatch] = {}

    async def add(self, queue: str, ticket: Ticket, expires_s: float) -> AddOutcome:
        if ticket.id in self._tickets:
            return AddOutcome.EXISTS
        if any(m.player in self._players for m in ticket.members):
            return AddOutcome.PLAYER_BUSY
        self._tickets[ticket.id] = Waiting(queue, ticket, expires_s)
        for m in ticket.members:
            self._players[m.player] = ticket.id
        return AddOutcome.OK

    def _remove(self, ticket_id: str) -> Waiting | None:
        waiting = self._tickets.pop(ticket_id, None)
        if waiting is not None:
            for m in waiting.ticket.members:
                self._players.pop(m.player, None)
        return waiting

    async def cancel(self, ticket_id: str) -> Waiting | None:
        return self._remove(ticket_id)

    async def of_player(self, player: str) -> Waiting | None:
        ticket_id = self._players.get(player)
        return None if ticket_id is None else self._tickets.get(ticket_id)

    async def set_expiry(self, ticket_id: str, expires_s: float) -> bool:
        waiting = self._tickets.get(ticket_id)
        if waiting is None:
            return False
        self._tickets[ticket_id] = Waiting(waiting.queue, waiting.ticket, expires_s)
        return True

    async def waiting(self, queue: str) -> list[Waiting]:
        found = [w for w in self._tickets.values() if w.queue == queue]
        return sorted(found, key=lambda w: (w.ticket.waiting_since_s, w.ticket.id))

    async def size(self, queue: str) -> int:
        return sum(w.queue == queue for w in self._tickets.values())

    async def expire(self, queue: str, now_s: float) -> list[Waiting]:
        gone = [w for w in await self.waiting(queue) if w.expires_s <= now_s]
        for w in gone:
            self._remove(w.ticket.id)
        return gone

    async def acquire(self, queue: str, owner: str, ttl_s: float) -> int | None:
        # In one process there is one matchmaker per queue: the lease never expires here.
        holder = self._leases.get(queue)
        if holder is not None and holder[0] != owner:
            return None
        if holder is not None:
            return holder[1]
        token = self._tokens.get(queue, 0) + 1
        self._tokens[queue] = token
        self._leases[queue] = (owner, token)
        return token

    async def release(self, queue: str, owner: str) -> None:
        if self._leases.get(queue, ("", 0))[0] == owner:
            del self._leases[queue]

    async def claim(
        self, queue: str, fencing_token: int, proposals: Sequence[Proposal]
    ) -> list[ClaimedMatch | None]:
        holder = self._leases.get(queue)
        if holder is None or holder[1] != fencing_token:
            return [None] * len(proposals)
        results: list[ClaimedMatch | None] = []
        for proposal in proposals:
            ids = sorted(proposal.tickets)
            if not all(i in self._tickets and self._tickets[i].queue == queue for i in ids):
                results.append(None)
                continue
            for i in ids:
                self._remove(i)
            claimed = ClaimedMatch(match_id(queue, ids), queue, proposal.teams, fencing_token)
            self._matches[claimed.id] = claimed
            results.append(claimed)
        return results

    async def match(self, match_id: str) -> ClaimedMatch | None:
        return self._matches.get(match_id)

    async def requeue(self, queue: str, tickets: Sequence[Ticket], expires_s: float) -> None:
        for ticket in tickets:
            await self.add(queue, ticket, expires_s)
