"""Queue configuration: which queues exist and how each matches, read from TOML.

    [defaults]                 # optional: applied to every queue
    ticket_ttl_s = 600

    [queue."cs2:5v5:eu"]
    team_size = 5
    window_start = 2.5
    draw_probability = 0.0     # the TrueSkill model's, per queue

A queue's name is ``game:mode:region``. Every key is checked; an unknown key or a bad value is
an error naming the queue and the key (a typo never falls back to a default).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from typing import Any

from .matcher import QueueRules
from .rating import RatingModel
from .service import QueueConfig

QUEUE_NAME = re.compile(r"^[a-z0-9_-]{1,32}:[a-z0-9_-]{1,32}:[a-z0-9_-]{1,32}$")
_RULES = {f.name for f in fields(QueueRules)}
_MODEL = {"draw_probability", "beta", "tau", "mu", "sigma"}
_QUEUE = {"ticket_ttl_s", "ready_check_s", "disconnect_grace_s", "decline_cooldown_s"}


class QueueConfigError(ValueError):
    pass


def parse_queues(text: str) -> dict[str, QueueConfig]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QueueConfigError(f"not TOML: {exc}") from None
    unknown_top = set(document) - {"defaults", "queue"}
    if unknown_top:
        raise QueueConfigError(f"unknown sections: {', '.join(sorted(unknown_top))}")
    defaults: dict[str, Any] = document.get("defaults", {})
    queues: dict[str, QueueConfig] = {}
    for name, own in document.get("queue", {}).items():
        if not QUEUE_NAME.match(name):
            raise QueueConfigError(f"queue {name!r}: a name is game:mode:region")
        settings = {**defaults, **own}
        unknown = set(settings) - _RULES - _MODEL - _QUEUE
        if unknown:
            raise QueueConfigError(f"queue {name!r}: unknown keys {', '.join(sorted(unknown))}")
        try:
            rules = QueueRules(**{k: v for k, v in settings.items() if k in _RULES})
            model = RatingModel(**{k: float(v) for k, v in settings.items() if k in _MODEL})
            extra = {k: float(v) for k, v in settings.items() if k in _QUEUE}
            queues[name] = QueueConfig(name, rules, model, **extra)
        except (TypeError, ValueError) as exc:
            raise QueueConfigError(f"queue {name!r}: {exc}") from None
    if not queues:
        raise QueueConfigError("no queue is configured")
    return queues


def mode_of(queue: str) -> str:
    """``cs2:5v5:eu`` -> ``cs2:5v5``: ratings are kept per game and mode, not per region."""
    return queue.rsplit(":", 1)[0]
