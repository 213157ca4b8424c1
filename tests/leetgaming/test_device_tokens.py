"""Device tokens (the pure part): bound to one address under one key; anything else is none."""

from __future__ import annotations

import pytest

from leetgaming import device_tokens as dt

KEY = dt.device_key("s" * 40)
DEVICE = bytes(range(16))


def test_a_token_checks_for_its_address_only() -> None:
    token = dt.issue(KEY, "olive@example.com", DEVICE)
    assert token.startswith("dv1.") and "olive" not in token
    device = dt.check(KEY, "olive@example.com", token)
    assert device is not None and device == dt.check(KEY, "olive@example.com", token)
    assert dt.check(KEY, "pat@example.com", token) is None
    assert dt.check(dt.device_key("t" * 40), "olive@example.com", token) is None
    other = dt.issue(KEY, "olive@example.com", bytes(16))
    assert dt.check(KEY, "olive@example.com", other) not in (None, device)


@pytest.mark.parametrize(
    "bad",
    [None, 12, "", "dv1", "dv1..", "dv2.AAAA.BBBB", "dv1.!!!.???", "dv1.AAAA.BBBB", "x" * 500],
)
def test_malformed_tokens_are_none(bad: object) -> None:
    assert dt.check(KEY, "olive@example.com", bad) is None


def test_a_tampered_tag_or_id_is_none() -> None:
    token = dt.issue(KEY, "olive@example.com", DEVICE)
    prefix, device, tag = token.split(".")
    flipped = ("B" if tag[0] == "A" else "A") + tag[1:]  # (the last character has padding bits)
    assert dt.check(KEY, "olive@example.com", f"{prefix}.{device}.{flipped}") is None
    moved = dt.issue(KEY, "olive@example.com", bytes(16)).split(".")[1]
    assert dt.check(KEY, "olive@example.com", f"{prefix}.{moved}.{tag}") is None
    with pytest.raises(ValueError):
        dt.issue(KEY, "olive@example.com", b"short")
