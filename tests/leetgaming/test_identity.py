"""The identity service on both databases (SQLite and PostgreSQL), with a controlled clock."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import jwt
import pytest

from leetgaming.db import Database
from leetgaming.identity import KEY_PROPAGATION_S, Identity, IdentityError
from leetgaming.passwords import PasswordPolicy, Passwords
from leetgaming.tokens import ACCESS_TOKEN_TTL_S, IDLE_TIMEOUT_S, INITIAL_KID

FAST = Passwords(PasswordPolicy(time_cost=1, memory_kib=8 * 1024))
NOW = 1_800_000_000
PASSWORD = "correct horse battery"


@dataclass
class Outbox:
    """The mail port's test side: what would have been sent."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)

    async def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))

    def link_token(self) -> str:
        match = re.search(r"#token=(\S+)", self.sent[-1][2])
        assert match, self.sent[-1]
        return match.group(1)


@dataclass
class Clock:
    now: int = NOW

    def __call__(self) -> int:
        return self.now


@dataclass
class World:
    identity: Identity
    outbox: Outbox
    clock: Clock


@pytest.fixture
async def world(database: Database) -> World:
    outbox, clock = Outbox(), Clock()
    identity = Identity(database, FAST, outbox, clock, "https://lg.example")
    await identity.start()
    return World(identity, outbox, clock)


async def signed_up(w: World, email: str = "Alice@Example.com") -> tuple[str, str]:
    await w.identity.register(email, PASSWORD)
    session = await w.identity.confirm(w.outbox.link_token())
    return session.subject, session.refresh_token


async def test_register_confirm_login(world: World) -> None:
    await world.identity.register(" Alice@Example.COM ", PASSWORD)
    to, subject, body = world.outbox.sent[-1]
    assert to == "alice@example.com" and "Confirm" in subject
    assert body.count("https://lg.example/confirm#token=") == 1
    # Not an account until the link is used.
    with pytest.raises(IdentityError) as refused:
        await world.identity.login("alice@example.com", PASSWORD)
    assert refused.value.code == "invalid_credentials"
    session = await world.identity.confirm(world.outbox.link_token())
    assert session.role == "player"
    claims = world.identity.verify(session.access_token)
    assert claims is not None and claims.subject == session.subject
    login = await world.identity.login("ALICE@example.com", PASSWORD)
    assert login.subject == session.subject
    assert await world.identity.user(session.subject) == ("alice@example.com", "player")
    with pytest.raises(IdentityError):  # a link works once
        await world.identity.confirm(world.outbox.link_token())


async def test_login_refusals_are_identical_for_unknown_email_and_wrong_password(
    world: World,
) -> None:
    await signed_up(world)
    refusals = []
    for email, password in [
        ("alice@example.com", "wrong password!!"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
        ("alice@example.com", "short"),
    ]:
        with pytest.raises(IdentityError) as refused:
            await world.identity.login(email, password)
        refusals.append((refused.value.code, str(refused.value)))
    assert len(set(refusals)) == 1, refusals


async def test_registering_a_taken_address_changes_nothing_and_tells_only_its_owner(
    world: World,
) -> None:
    subject, _ = await signed_up(world)
    assert await world.identity.register("alice@example.com", "another password 1") is None
    to, _, body = world.outbox.sent[-1]
    assert to == "alice@example.com" and "token=" not in body and "already" in body
    with pytest.raises(IdentityError):
        await world.identity.login("alice@example.com", "another password 1")
    assert (await world.identity.login("alice@example.com", PASSWORD)).subject == subject


async def test_each_link_carries_its_own_password(world: World) -> None:
    await world.identity.register("bob@example.com", "owner's password")
    owners_link = world.outbox.link_token()
    await world.identity.register("bob@example.com", "a stranger's one")
    strangers_link = world.outbox.link_token()
    await world.identity.confirm(owners_link)
    with pytest.raises(IdentityError):
        await world.identity.login("bob@example.com", "a stranger's one")
    await world.identity.login("bob@example.com", "owner's password")
    with pytest.raises(IdentityError):  # the other links of the address are gone
        await world.identity.confirm(strangers_link)


async def test_expired_link_is_refused(world: World) -> None:
    await world.identity.register("carol@example.com", PASSWORD)
    world.clock.now += 24 * 3600 + 1
    with pytest.raises(IdentityError) as refused:
        await world.identity.confirm(world.outbox.link_token())
    assert refused.value.code == "invalid_token"


async def test_bad_registrations_are_refused_with_a_reason(world: World) -> None:
    for email, password, code in [
        ("no-at-sign", PASSWORD, "invalid_email"),
        ("a@b", PASSWORD, "invalid_email"),
        (42, PASSWORD, "invalid_email"),
        ("dave@example.com", "short", "invalid_password"),
        ("dave@example.com", None, "invalid_password"),
    ]:
        with pytest.raises(IdentityError) as refused:
            await world.identity.register(email, password)
        assert refused.value.code == code
    assert world.outbox.sent == []


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(world: World) -> None:
    _, first = await signed_up(world)
    second = (await world.identity.refresh(first)).refresh_token
    third = (await world.identity.refresh(second)).refresh_token
    with pytest.raises(IdentityError) as reused:
        await world.identity.refresh(first)
    assert "reused" in str(reused.value)
    with pytest.raises(IdentityError):  # the thief's reuse ended the owner's session too
        await world.identity.refresh(third)


async def test_concurrent_use_of_one_token_is_one_rotation_and_one_reuse(world: World) -> None:
    _, token = await signed_up(world)
    results = await asyncio.gather(
        world.identity.refresh(token), world.identity.refresh(token), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1, results
    with pytest.raises(IdentityError):
        await world.identity.refresh(winners[0].refresh_token)


async def test_idle_session_ends_and_logout_revokes(world: World) -> None:
    _, token = await signed_up(world)
    world.clock.now += IDLE_TIMEOUT_S - 5
    token = (await world.identity.refresh(token)).refresh_token  # activity keeps it alive
    world.clock.now += IDLE_TIMEOUT_S + 1
    with pytest.raises(IdentityError) as idle:
        await world.identity.refresh(token)
    assert "idle" in str(idle.value)
    session = await world.identity.login("alice@example.com", PASSWORD)
    await world.identity.logout(session.refresh_token)
    assert not await world.identity.session_active(
        world.identity.verify(session.access_token).session  # type: ignore[union-attr]
    )
    with pytest.raises(IdentityError):
        await world.identity.refresh(session.refresh_token)
    await world.identity.logout("never issued")  # nothing to end: no error


async def test_admins_come_from_the_operator_only(world: World) -> None:
    admin_id = await world.identity.create_admin("root@example.com", PASSWORD)
    session = await world.identity.login("root@example.com", PASSWORD)
    assert (session.subject, session.role) == (admin_id, "admin")
    with pytest.raises(IdentityError) as taken:
        await world.identity.create_admin("ROOT@example.com", PASSWORD)
    assert taken.value.code == "email_taken"


async def test_game_server_key_exchange_and_revocation(world: World) -> None:
    admin_id = await world.identity.create_admin("root@example.com", PASSWORD)
    issued = await world.identity.issue_game_server_key("eu-1 CS2", admin_id)
    server_id, token, ttl = await world.identity.game_server_token(issued.key)
    claims = world.identity.verify(token)
    assert claims is not None and (claims.subject, claims.role) == (server_id, "game_server")
    assert server_id == issued.id and ttl <= 900
    listed = await world.identity.game_servers()
    assert [(s["id"], s["name"], s["revoked_s"]) for s in listed] == [(issued.id, "eu-1 CS2", None)]
    assert issued.key not in repr(listed)  # only its hash is stored
    for wrong in (issued.key[:-1] + "x", "lgsk_nothing_here", "", None):
        with pytest.raises(IdentityError):
            await world.identity.game_server_token(wrong)
    assert await world.identity.revoke_game_server(issued.id)
    assert not await world.identity.revoke_game_server(issued.id)
    with pytest.raises(IdentityError):
        await world.identity.game_server_token(issued.key)
    world.clock.now += ttl
    assert world.identity.verify(token) is None  # short-lived


async def test_processes_on_one_database_share_the_signing_key(database: Database) -> None:
    clock = Clock()
    first = Identity(database, FAST, Outbox(), clock, "http://x")
    second = Identity(database, FAST, Outbox(), clock, "http://x")
    await first.start()
    await second.start()
    assert first.secret == second.secret and len(first.secret) >= 48
    configured = Identity(database, FAST, Outbox(), clock, "http://x", "k" * 40)
    await configured.start()
    assert configured.secret == "k" * 40


async def test_a_rotated_signing_key_reaches_every_process_and_the_old_one_overlaps(
    database: Database,
) -> None:
    clock = Clock()
    first = Identity(database, FAST, Outbox(), clock, "http://x", "k" * 40)
    second = Identity(database, FAST, Outbox(), clock, "http://x", "k" * 40)
    await first.start()
    await second.start()
    await first.create_admin("ops@example.com", PASSWORD)
    old = (await first.login("ops@example.com", PASSWORD)).access_token
    assert jwt.get_unverified_header(old)["kid"] == INITIAL_KID

    kid, start = await first.rotate_signing_key()
    assert start == clock.now + KEY_PROPAGATION_S
    with pytest.raises(IdentityError) as pending:
        await second.rotate_signing_key()  # one rotation at a time
    assert pending.value.code == "rotation_pending"
    await second.refresh_keys()  # what every process does every KEYRING_REFRESH_S
    clock.now = start
    for process in (first, second):
        session = await process.login("ops@example.com", PASSWORD)
        assert jwt.get_unverified_header(session.access_token)["kid"] == kid
        assert first.verify(session.access_token) is not None
        assert second.verify(session.access_token) is not None
    # the replaced key's token lives out its lifetime on both, then it is refused
    assert second.verify(old) is not None
    clock.now = start + ACCESS_TOKEN_TTL_S
    third = Identity(database, FAST, Outbox(), clock, "http://x", "k" * 40)
    await third.start()
    assert third.verify(old) is None  # expired
