"""Channel names, namespaces, and who may subscribe or publish (pure rules).

A channel is ``<namespace>:<name>``. Namespaces and their rules:

| namespace | subscribe | client publish |
|---|---|---|
| ``lobby:`` | anyone, spectators included | players and admins (chat) |
| ``queue:`` | players and admins | nobody (server only) |
| ``match:`` | anyone | nobody (game servers report through their own channel) |
| ``tournament:`` | anyone | nobody |
| ``user:<id>`` | that player only (and admins) | nobody |
| ``gameserver:<id>`` | that game server only (and admins) | that game server |

Spectators are anonymous and read-only: public namespaces only, never a publish.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

CHANNEL_CHARS_MAX = 128
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


class Namespace(enum.StrEnum):
    LOBBY = "lobby"
    QUEUE = "queue"
    MATCH = "match"
    TOURNAMENT = "tournament"
    USER = "user"
    GAMESERVER = "gameserver"
    REFEREE = "referee"  # a live match as it happens: admins only (the public's is delayed)


PUBLIC = frozenset({Namespace.LOBBY, Namespace.MATCH, Namespace.TOURNAMENT})


class Role(enum.StrEnum):
    PLAYER = "player"
    ADMIN = "admin"
    GAME_SERVER = "game_server"
    SPECTATOR = "spectator"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on the other end of a connection."""

    role: Role
    subject: str  # player id, game server id; "" for a spectator


@dataclass(frozen=True, slots=True)
class Channel:
    namespace: Namespace
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"


def parse_channel(text: object) -> Channel | None:
    """The channel ``text`` names, or None when it is malformed or of no known namespace."""
    if not isinstance(text, str) or len(text) > CHANNEL_CHARS_MAX:
        return None
    namespace, sep, name = text.partition(":")
    if not sep or not _NAME.match(name):
        return None
    try:
        return Channel(Namespace(namespace), name)
    except ValueError:
        return None


def may_subscribe(who: Principal, channel: Channel) -> bool:
    if who.role is Role.ADMIN:
        return True
    if channel.namespace in PUBLIC:
        return True
    if who.role is Role.SPECTATOR:
        return False
    if channel.namespace is Namespace.QUEUE:
        return who.role is Role.PLAYER
    if channel.namespace is Namespace.USER:
        return who.role is Role.PLAYER and channel.name == who.subject
    if channel.namespace is Namespace.GAMESERVER:
        return who.role is Role.GAME_SERVER and channel.name == who.subject
    return False


PRESENCE_EVENTS = frozenset(
    {Namespace.LOBBY, Namespace.QUEUE, Namespace.MATCH, Namespace.GAMESERVER}
)
PRESENCE_EVENTS_MEMBERS_MAX = 200  # above it a channel is an audience: no join/leave events


def announces_presence(who: Principal, channel: Channel, members: int) -> bool:
    """Whether ``who`` joining or leaving is announced to the channel's ``members``: not for
    spectators, not on tournament and user channels, not in a crowd (each event goes to every
    member, so a crowd's joins would cost members squared). ``presence`` still lists all."""
    return (
        who.role is not Role.SPECTATOR
        and channel.namespace in PRESENCE_EVENTS
        and members <= PRESENCE_EVENTS_MEMBERS_MAX
    )


def may_publish(who: Principal, channel: Channel) -> bool:
    """Whether a *client* may publish; the server's own publish API is not limited by this."""
    if who.role is Role.SPECTATOR:
        return False
    if channel.namespace is Namespace.LOBBY:
        return who.role in (Role.PLAYER, Role.ADMIN)
    if channel.namespace is Namespace.GAMESERVER:
        return who.role is Role.GAME_SERVER and channel.name == who.subject
    return False
