from __future__ import annotations

import orjson
import pytest

from realtime.channel import Principal, Role, parse_channel
from realtime.envelope import CloseCode
from realtime.limits import SendQueue, TokenBucket
from realtime.session import (
    Close,
    Join,
    Leave,
    Publish,
    Send,
    Session,
    SessionLimits,
    State,
    Verify,
)

ALICE = Principal(Role.PLAYER, "alice")


def frame(**fields: object) -> bytes:
    return orjson.dumps({"v": 1, **fields})


def sent(effects: list[object]) -> list[dict[str, object]]:
    return [orjson.loads(e.frame) for e in effects if isinstance(e, Send)]


def open_session(limits: SessionLimits | None = None) -> Session:
    session = Session(opened_s=0.0, limits=limits or SessionLimits())
    assert session.receive(frame(type="auth", id="a", data={"token": "t"}), 0.1) == [
        Verify("t", "a")
    ]
    [auth_ok] = sent(session.verified(ALICE, "a", "s1"))
    assert auth_ok["type"] == "auth_ok" and auth_ok["data"]["subject"] == "alice"
    assert session.state is State.OPEN
    return session


def test_nothing_but_auth_and_ping_before_authentication() -> None:
    session = Session(opened_s=0.0)
    [error] = sent(session.receive(frame(type="subscribe", id="1", ch="lobby:x"), 0.1))
    assert error["data"]["code"] == "not_authenticated"
    assert sent(session.receive(frame(type="ping"), 0.2))[0]["type"] == "pong"


def test_refused_token_gets_an_error_and_may_try_again() -> None:
    session = Session(opened_s=0.0)
    session.receive(frame(type="auth", id="a", data={"token": "bad"}), 0.1)
    [error] = sent(session.refused("a"))
    assert error["data"] == {
        "code": "bad_token",
        "message": "the token was refused",
        "retryable": False,
        "ref": "a",
    }
    assert session.state is State.AWAITING_AUTH
    assert session.receive(frame(type="auth", id="b"), 0.2) == [Verify(None, "b")]


def test_illegal_transition_is_an_error() -> None:
    session = Session(opened_s=0.0)
    with pytest.raises(RuntimeError):
        session.verified(ALICE, "x", "s")


def test_auth_timeout_closes_with_unauthorized() -> None:
    session = Session(opened_s=0.0, limits=SessionLimits(auth_timeout_s=5))
    assert session.tick(4.0) == []
    assert session.tick(6.0) == [Close(CloseCode.UNAUTHORIZED, "no valid auth frame in time")]
    assert session.state is State.CLOSED


def test_subscribe_authorization_and_limits() -> None:
    session = open_session(SessionLimits(subscriptions_max=2))
    lobby = parse_channel("lobby:eu")
    assert session.receive(
        frame(
            type="subscribe", id="1", ch="lobby:eu", data={"since_offset": 3, "since_epoch": "e"}
        ),
        1,
    ) == [
        Join(lobby, "1", 3, "e")  # type: ignore[arg-type]
    ]
    assert (
        sent(session.receive(frame(type="subscribe", id="2", ch="user:bob"), 1))[0]["data"]["code"]
        == "forbidden"
    )
    assert (
        sent(session.receive(frame(type="subscribe", id="3", ch="lobby:eu"), 1))[0]["data"]["code"]
        == "already_subscribed"
    )
    assert (
        sent(session.receive(frame(type="subscribe", id="4", ch="nope:x"), 1))[0]["data"]["code"]
        == "bad_channel"
    )
    session.receive(frame(type="subscribe", id="5", ch="user:alice"), 1)
    assert (
        sent(session.receive(frame(type="subscribe", id="6", ch="match:1"), 1))[0]["data"]["code"]
        == "too_many_subscriptions"
    )
    effects = session.receive(frame(type="unsubscribe", id="7", ch="lobby:eu"), 1)
    assert effects[0] == Leave(lobby)  # type: ignore[arg-type]
    assert session.receive(
        frame(type="publish", id="8", ch="lobby:eu", data={"body": {"text": "gg"}}), 1
    ) == [
        Publish(lobby, {"from": "alice", "text": "gg"}, "8")  # type: ignore[arg-type]
    ]
    assert (
        sent(session.receive(frame(type="publish", id="9", ch="match:1", data={"body": 1}), 1))[0][
            "data"
        ]["code"]
        == "forbidden"
    )


def test_a_subscription_the_node_could_not_make_is_refused_as_retryable_and_undone() -> None:
    session = open_session()
    lobby = parse_channel("lobby:eu")
    assert lobby is not None
    [join] = session.receive(frame(type="subscribe", id="1", ch="lobby:eu"), 1)
    assert isinstance(join, Join)
    [refused] = sent(session.join_failed(lobby, "1"))
    assert refused["type"] == "error"
    assert refused["data"] == {
        "code": "internal",
        "message": "subscription failed",
        "retryable": True,
        "ref": "1",
    }
    assert session.channels == set()  # so the client may simply try again
    assert isinstance(session.receive(frame(type="subscribe", id="2", ch="lobby:eu"), 2)[0], Join)


def test_flood_closes_and_leaves_every_channel() -> None:
    session = open_session(SessionLimits(messages_per_s=1, messages_burst=3))
    session.receive(frame(type="subscribe", id="1", ch="lobby:eu"), 1.0)
    effects: list[object] = []
    for _ in range(5):
        effects += session.receive(frame(type="ping"), 1.0)
    assert effects[-1] == Close(CloseCode.FLOOD, "message rate over the limit")
    assert sum(isinstance(e, Send) for e in effects) == 1  # one pong within the burst of 3
    assert Leave(parse_channel("lobby:eu")) in effects  # type: ignore[arg-type]
    assert session.state is State.CLOSED and session.receive(frame(type="ping"), 9.0) == []


def test_a_game_server_has_the_rate_of_the_matches_it_hosts() -> None:
    """64 matches' results in a second from one server are not a flood; a player's 64 are."""
    limits = SessionLimits()
    for role, flooded in ((Role.GAME_SERVER, False), (Role.PLAYER, True)):
        session = Session(opened_s=0.0, limits=limits)
        session.receive(frame(type="auth", id="a", data={"token": "t"}), 0.1)
        session.verified(Principal(role, "x"), "a", "s1")
        effects: list[object] = []
        for n in range(64):
            effects += session.receive(frame(type="ping"), 1.0 + n / 64)
        closed = Close(CloseCode.FLOOD, "message rate over the limit") in effects
        assert closed is flooded, role
    session = Session(opened_s=0.0, limits=limits)  # and a server's rate has its limit too
    session.receive(frame(type="auth", id="a", data={"token": "t"}), 0.1)
    session.verified(Principal(Role.GAME_SERVER, "gs"), "a", "s1")
    effects = []
    for _ in range(int(limits.server_messages_burst) + 1):
        effects += session.receive(frame(type="ping"), 2.0)
    assert effects[-1] == Close(CloseCode.FLOOD, "message rate over the limit")


def test_too_many_bad_frames_is_a_protocol_violation() -> None:
    session = Session(opened_s=0.0, limits=SessionLimits(bad_frames_max=2, messages_burst=100))
    results = [session.receive(b"garbage", 0.1) for _ in range(3)]
    assert isinstance(results[0][0], Send) and isinstance(results[1][0], Send)
    assert results[2][-1] == Close(CloseCode.PROTOCOL_VIOLATION, "too many bad frames")


def test_token_bucket_refills_with_time() -> None:
    bucket = TokenBucket(rate_per_s=2, burst=2)
    assert bucket.take(0) and bucket.take(0) and not bucket.take(0)
    assert bucket.take(0.5) and not bucket.take(0.5)


def test_send_queue_is_bounded_in_bytes() -> None:
    queue = SendQueue(bytes_max=10)
    assert queue.push(b"12345") and queue.push(b"12345") and not queue.push(b"1")
    assert queue.pop() == b"12345" and queue.size_bytes == 5
    assert queue.push(b"1")


def chat(session: Session, text: object, now: float, ref: str = "c") -> list[object]:
    return session.receive(  # type: ignore[return-value]
        frame(type="publish", id=ref, ch="lobby:eu", data={"body": text}), now
    )


def test_lobby_chat_names_its_sender_and_keeps_to_its_size() -> None:
    session = open_session()
    lobby = parse_channel("lobby:eu")
    assert chat(session, {"text": "gl hf"}, 1) == [
        Publish(lobby, {"from": "alice", "text": "gl hf"}, "c")  # type: ignore[arg-type]
    ]
    for bad in (
        "gl hf",
        {"text": ""},
        {"text": "   "},
        {"text": "x" * 501},
        {"text": "hi", "from": "bob"},  # nobody speaks for someone else
        {"text": 5},
    ):
        [error] = sent(chat(session, bad, 1))
        assert error["data"]["code"] == "bad_field", bad
    assert chat(session, {"text": "x" * 500}, 1)[0].body["text"] == "x" * 500  # type: ignore[attr-defined]


def test_chat_rate_is_limited_for_players_with_a_retryable_error() -> None:
    session = open_session(SessionLimits(messages_burst=100, messages_per_s=100))
    outcomes = [type(chat(session, {"text": str(n)}, 1.0)[0]).__name__ for n in range(7)]
    assert outcomes == ["Publish"] * 5 + ["Send"] * 2
    [error] = sent(chat(session, {"text": "again"}, 1.0))
    assert (error["data"]["code"], error["data"]["retryable"]) == ("rate_limited", True)
    assert session.state is State.OPEN  # a chat refusal does not end the connection
    assert isinstance(chat(session, {"text": "later"}, 2.1)[0], Publish)  # one more per second
    admin = Session(opened_s=0.0, limits=SessionLimits(messages_burst=100, messages_per_s=100))
    admin.receive(frame(type="auth", id="a", data={"token": "t"}), 0)
    admin.verified(Principal(Role.ADMIN, "root"), "a", "s")
    assert all(isinstance(chat(admin, {"text": "notice"}, 1.0)[0], Publish) for _ in range(20))


def test_an_expired_token_closes_the_session_unless_refreshed() -> None:
    session = Session(opened_s=0.0)
    session.receive(frame(type="auth", id="a", data={"token": "t"}), 0)
    session.verified(ALICE, "a", "s1", expires_s=300.0)
    assert session.tick(299.0) == []
    assert session.receive(frame(type="refresh", id="r", data={"token": "t2"}), 250) == [
        Verify("t2", "r", refresh=True)
    ]
    [refreshed] = sent(session.refreshed(ALICE, "r", 600.0, 250.0))
    assert (refreshed["type"], refreshed["data"]["expires_in"]) == ("refreshed", 350)
    assert session.tick(599.0) == []
    # Someone else's token does not extend this session.
    [refused] = sent(session.refreshed(Principal(Role.PLAYER, "bob"), "r2", 900.0, 500.0))
    assert refused["data"]["code"] == "bad_token"
    [refused] = sent(session.refreshed(None, "r3", 0.0, 500.0))
    assert refused["data"]["code"] == "bad_token"
    effects = session.tick(600.0)
    assert effects[-1] == Close(CloseCode.SESSION_EXPIRED, "the token expired: refresh it")
    assert CloseCode.SESSION_EXPIRED.reconnect


def test_spectators_have_no_token_to_refresh_and_pong_is_always_welcome() -> None:
    session = Session(opened_s=0.0)
    assert session.receive(frame(type="pong"), 0.1) == []  # before auth too
    session.receive(frame(type="auth", id="a"), 0.2)
    session.verified(Principal(Role.SPECTATOR, ""), "a", "s")
    [error] = sent(session.receive(frame(type="refresh", id="r", data={"token": "t"}), 1))
    assert error["data"]["code"] == "bad_token"
    assert session.tick(10**9) == []  # never expires
