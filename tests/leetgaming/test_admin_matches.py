"""An organizer's match over REST (``POST /v1/admin/matches``): its players get the ready check
on their channel at once; the Idempotency-Key makes a retry the same match; bad teams, unknown
queues and non-admins are refused and start nothing."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from .openapi_check import conforms
from .test_play import event, player, serving_play
from .test_wallet_api import QUEUES, token


async def test_an_admin_creates_a_match_once_per_key(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    a, b = f"a{secrets.token_hex(4)}", f"b{secrets.token_hex(4)}"
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, _):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            doc = (await http.get("/openapi.json")).json()
            admin = token("root", "admin")
            body = {"queue": "cs2:1v1:eu", "teams": [[a], [b]], "best_of": 3}
            for bad, status, code in [
                (body | {"queue": "cs2:9v9:moon"}, 404, "unknown_queue"),
                (body | {"teams": [[a, b], []]}, 422, "bad_match"),
                (body | {"teams": [[a], [a]]}, 422, "bad_match"),
                (body | {"teams": [[a], [7]]}, 422, "bad_match"),
                (body | {"best_of": 2}, 422, "bad_match"),
                (body | {"winner": a}, 422, "unknown_field"),
            ]:
                refused = await http.post(
                    "/v1/admin/matches", json=bad, headers=admin | {"Idempotency-Key": "x"}
                )
                assert (refused.status_code, refused.json()["code"]) == (status, code), bad
                conforms(doc, refused)
            as_player = await http.post(
                "/v1/admin/matches", json=body, headers=token(a) | {"Idempotency-Key": "k"}
            )
            assert as_player.status_code == 403
            ws = await player(ws_url, a)
            key = {"Idempotency-Key": secrets.token_hex(8)}
            created = await http.post("/v1/admin/matches", json=body, headers=admin | key)
            assert created.status_code == 201, created.text
            conforms(doc, created)
            match = created.json()["match"]
            found = await event(ws, "match.found", match)
            assert sorted(p for team in found["teams"] for p in team) == sorted([a, b])
            again = await http.post("/v1/admin/matches", json=body, headers=admin | key)
            assert again.json()["match"] == match and again.headers["idempotent-replayed"] == "true"
            other = await http.post(
                "/v1/admin/matches", json=body | {"best_of": 5}, headers=admin | key
            )
            assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
            await ws.close()
