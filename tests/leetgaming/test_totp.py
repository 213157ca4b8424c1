"""TOTP against RFC 6238's published test vectors, drift, and replay refusal."""

from __future__ import annotations

import base64

import pytest

from leetgaming import totp

# RFC 6238 appendix B, SHA-1 key "12345678901234567890", 8 digits; we use the last 6.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode().rstrip("=")


@pytest.mark.parametrize(
    ("now_s", "eight_digits"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc_6238_vectors(now_s: int, eight_digits: str) -> None:
    assert totp.code_at(RFC_SECRET, now_s) == eight_digits[-6:]


def test_drift_of_one_step_and_no_replay() -> None:
    secret = totp.new_secret()
    now = 1_800_000_000.0
    code = totp.code_at(secret, now)
    step = totp.verify(secret, code, now, None)
    assert step == totp.step_of(now)
    assert totp.verify(secret, code, now, step) is None  # used once
    earlier = totp.code_at(secret, now - 30)
    assert totp.verify(secret, earlier, now, None) == step - 1  # 30 s of drift
    assert totp.verify(secret, totp.code_at(secret, now - 60), now, None) is None
    assert totp.verify(secret, totp.code_at(secret, now + 30), now, None) == step + 1
    for bad in ["", "12345", "1234567", "abcdef", 123456, None]:
        assert totp.verify(secret, bad, now, None) is None


def test_the_provisioning_uri_carries_the_secret_and_issuer() -> None:
    uri = totp.provisioning_uri("ABCDEF", "p1")
    assert uri.startswith("otpauth://totp/LeetGaming%3Ap1?")
    assert "secret=ABCDEF" in uri and "issuer=LeetGaming" in uri
