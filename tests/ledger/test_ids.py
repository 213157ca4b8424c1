from __future__ import annotations

import uuid

import pytest

from ledger.ids import ID_MAX, derive_id, id_to_text, is_valid_id, parse_id


def test_derive_id_is_deterministic_and_unambiguous() -> None:
    assert derive_id("prize", 7, 1) == derive_id("prize", 7, 1)
    assert derive_id("prize", 7, 1) != derive_id("prize", 7, 2)
    assert derive_id("a", "bc") != derive_id("ab", "c")
    assert is_valid_id(derive_id("x"))


@pytest.mark.parametrize(
    "value", [1, ID_MAX, uuid.UUID(int=5), "00000000-0000-0000-0000-000000000005"]
)
def test_parse_id_accepts(value: object) -> None:
    assert is_valid_id(parse_id(value))


@pytest.mark.parametrize("value", [0, -1, ID_MAX + 1, True, 1.0, "nope", "0" * 100, None, b"x"])
def test_parse_id_refuses_malformed_ids(value: object) -> None:
    with pytest.raises(ValueError):
        parse_id(value)


def test_text_round_trip() -> None:
    assert parse_id(id_to_text(123456789)) == 123456789


def test_time_ordered_ids_grow_with_time_and_stay_valid() -> None:
    from ledger.ids import time_ordered_id

    a = time_ordered_id(1_800_000_000_000, (1 << 80) - 1)
    b = time_ordered_id(1_800_000_000_001, 0)
    assert a < b and is_valid_id(a) and is_valid_id(b)
    with pytest.raises(ValueError):
        time_ordered_id(1 << 48, 0)
