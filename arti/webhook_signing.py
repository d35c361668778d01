"""Webhook signatures: HMAC-SHA256 over `{timestamp}.{body}`, sent as `X-Arti-Signature: v1=<hex>`.

The recipe (docs/webhooks.md) for receivers:

* key: the endpoint's secret exactly as shown (`whsec_...`), as UTF-8 bytes;
* message: the `X-Arti-Timestamp` header value, a dot, then the raw request body (UTF-8);
* signature: lowercase hex of HMAC-SHA256(key, message); the header carries `v1=<signature>`, or
  several comma-separated `v1=` values while a rotated secret overlaps the new one: accept any match;
* reject timestamps more than 5 minutes from now (replays), deduplicate on `X-Arti-Event-Id`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SCHEME = "v1"
TOLERANCE_SECONDS = 300


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def compute_signature(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """Lowercase hex HMAC-SHA256(secret, f"{timestamp}.{body}")."""
    message = _bytes(str(timestamp)) + b"." + _bytes(body)
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int | str, body: str | bytes) -> str:
    """`v1=<sig>` for each secret (current first), comma-separated."""
    values = [f"{SCHEME}={compute_signature(secret, timestamp, body)}" for secret in secrets if secret]
    if not values:
        raise ValueError("at least one signing secret is required")
    return ",".join(values)


def verify_signature(secret: str, header: str | None, timestamp: str | None, body: str | bytes, *,
                     now: float | None = None, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """True when `header` holds a v1 signature of `body` by `secret` and `timestamp` is recent."""
    if not header or not timestamp:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    expected = compute_signature(secret, timestamp, body)
    for part in header.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SCHEME and hmac.compare_digest(value, expected):
            return True
    return False
