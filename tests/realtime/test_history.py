from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.history import HistoryLimits, Stream

LIMITS = HistoryLimits(history_size_min=5, history_ttl_s_min=10.0, history_size_max=20)


def test_offsets_grow_by_one_and_recovery_replays_in_order() -> None:
    stream = Stream("e1", LIMITS)
    for n in range(1, 4):
        assert stream.publish(b"%d" % n, now_s=n).offset == n
    recovery = stream.recover(1, "e1", now_s=4)
    assert recovery.recovered and [p.offset for p in recovery.publications] == [2, 3]
    assert stream.recover(3, "e1", now_s=4).publications == ()


def test_other_epoch_or_future_offset_is_not_recovered() -> None:
    stream = Stream("e1", LIMITS)
    stream.publish(b"x", now_s=0)
    assert not stream.recover(0, "e0", now_s=1).recovered
    assert not stream.recover(5, "e1", now_s=1).recovered
    assert not stream.recover(-1, "e1", now_s=1).recovered


def test_window_keeps_at_least_the_minimum_count_and_age() -> None:
    stream = Stream("e", LIMITS)
    for _ in range(10):
        stream.publish(b"", now_s=0)
    # All ten are younger than the TTL: kept, even above the minimum count.
    assert stream.recover(0, "e", now_s=5).recovered
    # Older than the TTL: only the last five remain.
    assert not stream.recover(0, "e", now_s=20).recovered
    assert stream.recover(5, "e", now_s=20).recovered
    assert not stream.recover(4, "e", now_s=20).recovered


def test_history_is_bounded_whatever_the_rate() -> None:
    stream = Stream("e", LIMITS)
    for _ in range(100):
        stream.publish(b"", now_s=0)
    assert len(stream.history) == 20


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        HistoryLimits(history_size_min=10, history_size_max=5)


@given(
    st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), min_size=0, max_size=60),
    st.integers(min_value=0, max_value=70),
    st.floats(min_value=0, max_value=30, allow_nan=False),
)
def test_recovery_is_exact_or_refused(gaps: list[float], since: int, later: float) -> None:
    """Never a silent gap: either exactly the publications after ``since``, or not recovered."""
    stream = Stream("e", LIMITS)
    now = 0.0
    for gap in gaps:
        now += gap
        stream.publish(b"p", now_s=now)
    recovery = stream.recover(since, "e", now_s=now + later)
    if recovery.recovered:
        assert [p.offset for p in recovery.publications] == list(range(since + 1, len(gaps) + 1))
    else:
        assert since > len(gaps) or since + 1 < stream.history[0].offset
