"""The security event log: one JSON line per event on the ``leetgaming.security`` logger.

Events: ``sign_in`` (outcome ``ok`` or ``failed``), ``access_denied`` (a REST 401 or 403, a
websocket subscription, publication or call refused), ``rate_limited``, ``ws_origin_refused``,
``ws_connections_max``, ``session_revoked``. Each names its ``actor`` (a subject, or
``anonymous``; a sign-in that failed names the account only by a short hash of its address,
never the address) and comes with the formatter's UTC timestamp. Admin actions and money are
in the audit log (:mod:`leetgaming.audit`, append-only, in the database), not here.

Values are made safe to put on one line whatever the sink: control characters (CR, LF, ...)
become ``\\uXXXX`` escapes and each value is cut to :data:`VALUE_CHARS_MAX`, so a client cannot
forge a second log line or flood one (the JSON formatter escapes them again, harmlessly). An
IP address is logged by its network only (a /24 or /48), as personal data is kept out of logs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Mapping
from typing import Any, Final

log = logging.getLogger("leetgaming.security")

VALUE_CHARS_MAX: Final = 200
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean(value: object) -> str:
    """``value`` as one safe line: control characters escaped, at most VALUE_CHARS_MAX."""
    text = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value))
    return text[:VALUE_CHARS_MAX]


def network_of(address: str | None) -> str:
    """The network an address belongs to (IPv4 /24, IPv6 /48), not the address itself."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def account_hash(email: str) -> str:
    """A short, stable name for an account address in logs (not the address)."""
    return "acct:" + hashlib.sha256(email.encode()).hexdigest()[:12]


def route_of(scope: Mapping[str, Any]) -> str:
    """The route template a request matched (``/v1/withdrawals/{withdrawal_id}``), else its
    path."""
    return getattr(scope.get("route"), "path", None) or str(scope.get("path", ""))


def network_of_client(scope: Mapping[str, Any]) -> str:
    """:func:`network_of` the client of an ASGI ``scope``."""
    client = scope.get("client")
    return network_of(client[0] if client else None)


def operation_refused(scope: Mapping[str, Any], actor: str, code: str) -> None:
    """A business operation turned down (insufficient funds, a wrong state, ...)."""
    event("operation_refused", actor, code=code, method=scope.get("method"), route=route_of(scope))


def event(name: str, actor: str | None, outcome: str = "denied", **fields: object) -> None:
    """Log one security event (``outcome`` ``ok`` at INFO, anything else at WARNING)."""
    extra: dict[str, object] = {
        "event": name,
        "actor": clean(actor) if actor else "anonymous",
        "outcome": outcome,
    }
    for key, value in fields.items():
        extra[key] = value if isinstance(value, int | bool) or value is None else clean(value)
    log.log(logging.INFO if outcome == "ok" else logging.WARNING, name, extra=extra)
