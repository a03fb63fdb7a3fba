"""Webhook signatures (API.md): ``Kota-Signature: t=<unix>,v1=<hex>``.

``v1`` is HMAC-SHA256, keyed with the endpoint's secret, over ``"<t>.<body>"`` where ``body``
is the exact bytes sent. The timestamp is signed too, so a receiver that rejects old
timestamps (``tolerance``) is safe from replays. Pure standard library, no Django, so a
receiver can copy this module as is.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Kota-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The header is malformed, the signature does not match, or the timestamp is too old."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Check ``header`` against ``body``; return its timestamp or raise ``SignatureError``.

    Several ``v1`` entries may be present (e.g. during a secret rotation); one match suffices.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"Malformed signature header part {part!r}.")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise SignatureError("The signature timestamp is not an integer.") from exc
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("The signature header needs t= and v1=.")
    expected = _digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("The signature does not match the body.")
    if abs(now - timestamp) > tolerance:
        raise SignatureError("The signature timestamp is outside the tolerance.")
    return timestamp
