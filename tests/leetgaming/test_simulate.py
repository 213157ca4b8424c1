"""``leetgaming simulate`` against a running server: the bots use the real websocket protocol
and REST API, card payments go through localstripe, and what the summary claims is checked
against what the server itself says. (``serve --demo`` is seen in the browser:
``tests/browser/test_demo.py``.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from leetgaming import sim_model as model

from ..ws import unused_port
from .test_cli import environment_without_settings, running_server, stop

WHSEC = "whsec_simulation_test_secret"


def test_outcomes_follow_the_true_skills() -> None:
    import random

    rng = random.Random(3)
    strong, weak = [30.0], [20.0]
    p = model.win_probability(strong, weak)
    assert 0.9 < p < 0.97  # a gap of 2.4 beta
    wins = sum(model.draw_ranks(rng, [strong, weak]) == [0, 1] for _ in range(4000))
    assert abs(wins / 4000 - p) < 0.02
    assert model.win_probability([25.0], [25.0]) == 0.5
    for ranks in ([0, 1], [1, 0]):
        scores = list(model.rounds(rng, ranks))
        winner = ranks.index(0)
        assert scores[-1][winner] == model.ROUNDS_TO_WIN
        assert scores[-1][1 - winner] < model.ROUNDS_TO_WIN - 1
        assert all(max(s) < model.ROUNDS_TO_WIN for s in scores[:-1])  # decided on the last
        assert all(sum(s) == i for i, s in enumerate(scores, start=1))


def test_rating_error_against_the_true_skills() -> None:
    skills = {"a": 35.0, "b": 25.0, "c": 15.0}
    perfect = model.rating_error(skills, dict(skills))
    assert perfect.rmse == 0 and perfect.rank_correlation == 1.0
    assert perfect.rmse_before == pytest.approx((200 / 3) ** 0.5)
    unrated = model.rating_error(skills, {})  # nobody played: everyone at the prior
    assert unrated.rmse == unrated.rmse_before and unrated.rank_correlation is None
    backwards = model.rating_error(skills, {"a": 15.0, "b": 25.0, "c": 35.0})
    assert backwards.rank_correlation == -1.0
    assert model.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert model.percentile([], 0.5) is None


def _server_env(tmp_path: Path, backends: dict[str, str], port: int) -> dict[str, str]:
    return (
        environment_without_settings()
        | backends
        | {
            "LEETGAMING_PORT": str(port),
            "LEETGAMING_MAIL_DIR": str(tmp_path / "mail"),
            "LEETGAMING_REST_REQUESTS_PER_MIN": "100000",  # every bot is on 127.0.0.1
        }
    )


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("own_backends", ["distributed"], indirect=True)
def test_simulate_deposits_plays_and_pays_a_tournament_on_a_running_server(
    tmp_path: Path, own_backends: dict[str, str], localstripe: str
) -> None:
    port = unused_port()
    env = _server_env(tmp_path, own_backends, port) | {
        "LEETGAMING_STRIPE_SECRET_KEY": "sk_test_simulation",
        "LEETGAMING_STRIPE_WEBHOOK_SECRET": WHSEC,
        "LEETGAMING_STRIPE_API_BASE": localstripe,
    }
    with running_server(tmp_path, env) as server:
        base = f"http://127.0.0.1:{port}"
        hook = httpx.post(
            f"{localstripe}/_config/webhooks/leetgaming",
            data={"url": f"{base}/v1/webhooks/stripe", "secret": WHSEC},
        )
        assert hook.status_code == 200, hook.text
        # one argument per option, as a user would type them
        # fmt: off
        args = [
            "--seed", "7", "--players", "8", "--servers", "1", "--duration-s", "20",
            "--tournament-size", "4", "--tournament-every-s", "8", "--round-s", "0.05",
            "--rest-s", "0.5", "--progress-s", "5",
        ]
        # fmt: on
        run = subprocess.run(
            [sys.executable, "-m", "leetgaming", "simulate", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert run.returncode == 0, run.stderr[-4000:]
        summary: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
        assert summary["players"] == 8 and summary["game_servers"] == 1
        # every card deposit credited once, less the 2.5 % fee
        assert summary["deposits"] >= 8  # and again when a player runs out
        assert summary["deposited_usd_cents"] == summary["deposits"] * (2_000 - 50)
        assert summary["matches_finished"] >= 6, summary
        assert summary["tournament_matches"] >= 3, summary  # a 4-player bracket, at least
        assert summary["queue_joins"] >= summary["matches_finished"] - summary["tournament_matches"]
        assert summary["wait_p50_s"] is not None and summary["wait_p50_s"] < 30
        assert summary["tournaments_completed"] >= 1
        assert summary["reconciliation_ok"] is True
        assert summary["rating_rmse"] is not None
        assert summary["rating_rmse"] != summary["rating_rmse_before"]  # ratings moved
        assert "rating error: RMSE" in run.stdout and "reconciliation: clean" in run.stdout
        progress = [line for line in run.stderr.splitlines() if line.startswith("[")]
        assert len(progress) >= 3 and "matches" in progress[-1]

        # What the server says: the tournaments completed, the prizes in the ledger
        listed = httpx.get(f"{base}/v1/tournaments").json()["tournaments"]
        simulated = [t for t in listed if t["name"].startswith("Simulated")]
        done = []
        for t in simulated:
            bracket = httpx.get(f"{base}/v1/tournaments/{t['id']}/bracket").json()
            if bracket["phase"] == "complete":
                done.append(bracket)
        assert len(done) == summary["tournaments_completed"]
        # each pays its entry fees ($5.00 each) less the 10 % rake
        assert all(int(t["pool"]["prizes"]) == 450 * len(t["entries"]) for t in done)
        assert summary["prizes_paid_usd_cents"] == sum(int(t["pool"]["prizes"]) for t in done)
        [[champion]] = [who for place, who in done[0]["places"] if place == 1]
        history = httpx.get(f"{base}/v1/players/{champion}/tournaments").json()["tournaments"]
        assert (done[0]["id"], 1) in [(h["id"], h["place"]) for h in history]
        assert stop(server) == 0
