"""Parties: players who queue together and play on one team.

- ``party.create``: the caller leads a new party of one (refused when already in a party).
- ``party.invite {player}``: the leader invites someone (at most ``INVITES_MAX`` open invites);
  the invitee hears ``party.invited`` on their ``user:`` channel.
- ``party.join {party}``: an invited player joins, up to ``size_max`` members (the largest
  team size of the configured queues).
- ``party.leave``: a member leaves; when the leader leaves, the party is disbanded.
- ``party.status``: the caller's party, or none.

Every change is told to each member's ``user:`` channel (``party.changed`` with the members,
or ``party.disbanded``). The party's queue ticket, if one waits, is cancelled by the caller
(:class:`~leetgaming.play.Play`) whenever the membership changes: a ticket always holds exactly
the party it was made for.

Parties live in the database (every process sees them). Joins are capped by one conditional
``UPDATE ... SET size = size + 1 WHERE size < cap`` in the joining transaction, so two players
joining at once can never take a party over its size.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from leetgaming.db import Database, is_unique_violation
from realtime.server import RpcError

INVITES_MAX: Final = 16  # open invites per party
PLAYER_ID_CHARS_MAX: Final = 64

MIGRATION: Final = """
CREATE TABLE parties (
    id TEXT PRIMARY KEY,
    leader TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL CHECK (size >= 1),
    created_s DOUBLE PRECISION NOT NULL
);
CREATE TABLE party_members (
    player TEXT PRIMARY KEY,
    party TEXT NOT NULL,
    joined_s DOUBLE PRECISION NOT NULL
);
CREATE INDEX party_members_party ON party_members (party, joined_s);
CREATE TABLE party_invites (
    party TEXT NOT NULL,
    player TEXT NOT NULL,
    PRIMARY KEY (party, player)
)
"""


@dataclass(frozen=True, slots=True)
class Party:
    id: str
    leader: str
    members: tuple[str, ...]  # the leader first, then in order of joining

    def view(self) -> dict[str, Any]:
        return {"party": self.id, "leader": self.leader, "members": list(self.members)}


Publish = Callable[[str, object], Awaitable[int]]


def expect_params(params: dict[str, Any], *names: str) -> None:
    """Refuse (``bad_params``) a call with parameters other than ``names``."""
    if set(params) - set(names):
        takes = f"{{{', '.join(names)}}}" if names else "no parameters"
        raise RpcError("bad_params", f"takes {takes}")


class Parties:
    def __init__(
        self, db: Database, publish: Publish, clock: Callable[[], float], size_max: int
    ) -> None:
        self.db = db
        self.publish = publish
        self.clock = clock
        self.size_max = size_max

    async def of(self, player: str) -> Party | None:
        """The party ``player`` is in, if any."""
        rows = await self.db.fetch(
            "SELECT p.id, p.leader, m2.player FROM party_members m "
            "JOIN parties p ON p.id = m.party "
            "JOIN party_members m2 ON m2.party = p.id "
            "WHERE m.player = ? ORDER BY m2.joined_s, m2.player",
            player,
        )
        if not rows:
            return None
        leader = str(rows[0][1])
        others = tuple(str(r[2]) for r in rows if r[2] != leader)
        return Party(str(rows[0][0]), leader, (leader, *others))

    async def create(self, player: str, params: dict[str, Any]) -> Party:
        expect_params(params)
        party = Party(f"pt-{secrets.token_hex(8)}", player, (player,))
        now = self.clock()
        try:
            async with self.db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO parties (id, leader, size, created_s) VALUES (?, ?, 1, ?)",
                    party.id,
                    player,
                    now,
                )
                await tx.execute(
                    "INSERT INTO party_members (player, party, joined_s) VALUES (?, ?, ?)",
                    player,
                    party.id,
                    now,
                )
        except Exception as exc:
            if is_unique_violation(exc):
                raise RpcError("already_in_party", "leave your party first") from None
            raise
        return party

    async def invite(self, player: str, params: dict[str, Any]) -> dict[str, Any]:
        expect_params(params, "player")
        invitee = params.get("player")
        if not isinstance(invitee, str) or not 0 < len(invitee) <= PLAYER_ID_CHARS_MAX:
            raise RpcError("bad_params", "party.invite takes {player}")
        party = await self.of(player)
        if party is None or party.leader != player:
            raise RpcError("not_party_leader", "only a party's leader invites")
        if invitee in party.members:
            raise RpcError("already_in_party", "they are in your party")
        row = await self.db.fetchone("SELECT COUNT(*) FROM party_invites WHERE party = ?", party.id)
        if row is not None and int(row[0]) >= INVITES_MAX:
            raise RpcError("too_many_invites", f"at most {INVITES_MAX} open invites")
        await self.db.execute(
            "INSERT INTO party_invites (party, player) VALUES (?, ?) ON CONFLICT DO NOTHING",
            party.id,
            invitee,
        )
        await self.publish(
            f"user:{invitee}", {"kind": "party.invited", "party": party.id, "leader": player}
        )
        return {"party": party.id, "invited": invitee}

    async def join(self, player: str, params: dict[str, Any]) -> Party:
        expect_params(params, "party")
        party_id = params.get("party")
        if not isinstance(party_id, str):
            raise RpcError("bad_params", "party.join takes {party}")
        try:
            async with self.db.transaction() as tx:
                invited = await tx.execute(
                    "DELETE FROM party_invites WHERE party = ? AND player = ?", party_id, player
                )
                if invited != 1:
                    raise RpcError("not_invited", "no invite to that party")
                grown = await tx.execute(
                    "UPDATE parties SET size = size + 1 WHERE id = ? AND size < ?",
                    party_id,
                    self.size_max,
                )
                if grown != 1:
                    raise RpcError("party_full", f"parties have at most {self.size_max} players")
                await tx.execute(
                    "INSERT INTO party_members (player, party, joined_s) VALUES (?, ?, ?)",
                    player,
                    party_id,
                    self.clock(),
                )
        except Exception as exc:
            if is_unique_violation(exc):
                raise RpcError("already_in_party", "leave your party first") from None
            raise
        party = await self.of(player)
        assert party is not None
        await self.tell(party)
        return party

    async def leave(self, player: str) -> Party | None:
        """Take ``player`` out of their party (disbanding it when they lead it); the party as
        it was, or None when they were in none."""
        party = await self.of(player)
        if party is None:
            return None
        async with self.db.transaction() as tx:
            if party.leader == player:
                await tx.execute("DELETE FROM party_members WHERE party = ?", party.id)
                await tx.execute("DELETE FROM party_invites WHERE party = ?", party.id)
                await tx.execute("DELETE FROM parties WHERE id = ?", party.id)
            else:
                await tx.execute("DELETE FROM party_members WHERE player = ?", player)
                await tx.execute("UPDATE parties SET size = size - 1 WHERE id = ?", party.id)
        if party.leader == player:
            for member in party.members:
                await self.publish(f"user:{member}", {"kind": "party.disbanded", "party": party.id})
        else:
            await self.publish(f"user:{player}", {"kind": "party.left", "party": party.id})
            remaining = await self.of(party.leader)
            if remaining is not None:
                await self.tell(remaining)
        return party

    async def tell(self, party: Party) -> None:
        body = {"kind": "party.changed", **party.view()}
        for member in party.members:
            await self.publish(f"user:{member}", body)
