"""Queue configuration from TOML: the shipped file, and refusals that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from matchmaking.queues import QueueConfigError, mode_of, parse_queues

SHIPPED = Path(__file__).resolve().parents[2] / "leetgaming" / "queues.toml"


def test_the_shipped_queues_parse() -> None:
    queues = parse_queues(SHIPPED.read_text())
    assert {"cs2:1v1:eu", "cs2:5v5:eu", "cs2:5v5:na"} <= set(queues)
    five = queues["cs2:5v5:eu"]
    assert (five.rules.team_size, five.ready_check_s, five.model.draw_probability) == (5, 20, 0.1)
    assert mode_of("cs2:5v5:eu") == "cs2:5v5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[queue."cs2:5v5"]\nteam_size = 5', "a name is game:mode:region"),
        ('[queue."cs2:5v5:eu"]\nteam_sise = 5', "unknown keys team_sise"),
        ('[queue."cs2:5v5:eu"]\nteam_size = 0', "two teams of at least one player"),
        ('[queue."cs2:5v5:eu"]\ndraw_probability = 2', "queue 'cs2:5v5:eu'"),
        ("[queues]\n", "unknown sections: queues"),
        ("", "no queue is configured"),
        ("[queue", "not TOML"),
    ],
)
def test_bad_configuration_is_refused_precisely(text: str, message: str) -> None:
    with pytest.raises(QueueConfigError) as refused:
        parse_queues(text)
    assert message in str(refused.value)
