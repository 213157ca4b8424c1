"""The hub's fast path: frames written straight to uvicorn's transport must be exactly what
the websocket library would have sent, and arrive complete and in order."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from leetgaming.tokens import issue_access_token
from realtime.server import HubNode, ServerLimits, _Connection
from realtime.wire import WIRE_SCOPE_KEY, Wire, text_frame_header

from ..ws import call, connect, embedded_app, receive, serving, unused_port

SECRET = "w" * 40


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 1_000_000])
def test_a_text_frame_is_framed_as_the_websocket_library_frames_it(length: int) -> None:
    payload = b"x" * length
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame_header(length) + payload == expected


@pytest.mark.parametrize("deflate", [False, True], ids=["framed", "asgi-deflate"])
async def test_publications_and_replies_arrive_whole_and_in_order(
    tmp_path: Path, deflate: bool
) -> None:
    port = unused_port()
    app = embedded_app(tmp_path, SECRET, port)
    hub = app.state.hub
    token = issue_access_token(SECRET, "p1", "player", "s", int(time.time()))
    async with (
        serving(app, port, deflate=deflate),
        connect(f"ws://127.0.0.1:{port}/ws", max_size=2**21) as ws,
    ):
        assert (await call(ws, type="auth", id="a", data={"token": token}))["type"] == "auth_ok"
        assert (await call(ws, type="subscribe", id="s", ch="user:p1"))["type"] == "subscribed"
        # Only the connection configured like production (no compression) is framed here.
        assert hub.connection_counts() == {"open": 1, "framed": 0 if deflate else 1}
        sizes = [0, 10, 200, 70_000, 5, 300_000, 1]
        for size in sizes:  # several in one turn of the loop: one write
            await hub.publish("user:p1", {"pad": "é" * size})
        ping = orjson.dumps({"v": 1, "type": "ping_check"}).decode()
        await ws.send(ping)
        seen = [await receive(ws) for _ in sizes]
        assert [f["type"] for f in seen] == ["pub"] * len(sizes)
        assert [f["data"]["offset"] for f in seen] == list(range(1, len(sizes) + 1))
        assert [len(f["data"]["body"]["pad"]) for f in seen] == sizes
        # The reply to a frame sent after them comes after them.
        assert (await receive(ws))["type"] == "error"


class _Transport:
    """A transport whose peer reads nothing: what is written stays buffered."""

    def __init__(self) -> None:
        self.buffered = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


async def test_a_framed_connection_whose_buffer_never_drains_is_dropped() -> None:
    """The kernel may hold a stalled reader's backlog without the 1 MiB bound being reached:
    the transport buffer not emptying for ``send_stall_s`` drops it all the same."""
    now = [0.0]
    node = HubNode(lambda token: None, clock=lambda: now[0])  # type: ignore[arg-type, return-value]
    node.limits = ServerLimits(send_stall_s=10.0)
    transport = _Transport()
    protocol = SimpleNamespace(
        conn=SimpleNamespace(state=State.OPEN, extensions=[]), close_sent=False
    )
    websocket = SimpleNamespace(scope={WIRE_SCOPE_KEY: Wire(protocol, transport)})
    connection = _Connection(node, websocket)  # type: ignore[arg-type]
    connection.use_framing()
    assert connection.framing
    connection.push(b'{"v":1,"type":"ping"}')
    connection.flush()
    assert transport.buffered == 2 + len(b'{"v":1,"type":"ping"}')
    assert not connection.stalled(now[0])  # the buffer starts being watched
    now[0] = 9.0
    assert not connection.stalled(now[0])
    transport.buffered = 0  # it drained: the watch starts over
    assert not connection.stalled(now[0])
    transport.buffered = 5
    assert not connection.stalled(now[0])
    now[0] = 19.5
    assert connection.stalled(now[0])
    connection.drop()
    assert transport.aborted
