"""Idempotency keys: the decisions of Stripe's semantics, and the request fingerprint."""

from __future__ import annotations

import pytest

from wallet import idempotency as idem
from wallet.idempotency import Decision, Record


def test_the_fingerprint_ignores_key_order_but_not_values_method_or_path() -> None:
    base = idem.fingerprint("POST", "/v1/deposits", {"amount": "10", "asset": "USD"})
    assert base == idem.fingerprint("post", "/v1/deposits", {"asset": "USD", "amount": "10"})
    assert base != idem.fingerprint("POST", "/v1/deposits", {"amount": "11", "asset": "USD"})
    assert base != idem.fingerprint("POST", "/v1/withdrawals", {"amount": "10", "asset": "USD"})
    assert base != idem.fingerprint("PUT", "/v1/deposits", {"amount": "10", "asset": "USD"})
    # length-prefixed parts: moving a character between path and body changes the digest
    assert idem.fingerprint("POST", "/a", "b") != idem.fingerprint("POST", '/a"', "")


def test_decisions() -> None:
    fp = "f" * 64
    now = 10_000
    assert idem.decide(None, fp, now) is Decision.RUN
    done = Record(fp, now - 5, 201, b"{}")
    assert idem.decide(done, fp, now) is Decision.REPLAY
    assert idem.decide(done, "0" * 64, now) is Decision.REUSED
    running = Record(fp, now - 5, None, None)
    assert idem.decide(running, fp, now) is Decision.IN_PROGRESS
    assert idem.decide(running, "0" * 64, now) is Decision.REUSED
    stale = Record(fp, now - idem.CLAIM_TTL_S, None, None)
    assert idem.decide(stale, fp, now) is Decision.RUN
    expired = Record("0" * 64, now - idem.RETENTION_S, 201, b"{}")
    assert idem.decide(expired, fp, now) is Decision.RUN


@pytest.mark.parametrize(
    ("status", "kept"),
    [
        (200, True),
        (201, True),
        (402, False),
        (404, False),
        (409, False),
        (400, False),
        (401, False),
        (413, False),
        (422, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_which_responses_are_kept(status: int, kept: bool) -> None:
    assert idem.saved(status) is kept


@pytest.mark.parametrize("bad", [None, "", "x" * 256, "tab\there", "ключ"])
def test_a_bad_key_is_refused(bad: str | None) -> None:
    with pytest.raises(idem.BadKey):
        idem.check_key(bad)


def test_a_good_key_passes() -> None:
    assert idem.check_key("8d1e6c1c-2a8e-4f0b-9b1e-0c3f5b0a4e77") == (
        "8d1e6c1c-2a8e-4f0b-9b1e-0c3f5b0a4e77"
    )
