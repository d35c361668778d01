"""Where the browser may be sent back to: an allow-list of frontend URLs (ARTI_FRONTEND_URLS).

A candidate URL is allowed when it is an absolute http(s) URL with the same scheme, host and port as an
allow-list entry and a path at or under the entry's path (on a segment boundary: `/app` allows `/app/x`,
not `/application`). Credentials, fragments, backslashes, control characters and dot segments are refused
outright, so what the browser will resolve is exactly what was checked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN_CHARS = re.compile(r"[\\\x00-\x20\x7f]")


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int
    path: str


def _parse(url: str) -> _Origin | None:
    if not url or _FORBIDDEN_CHARS.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None or parts.fragment:
        return None
    if "#" in url:
        return None
    segments = unquote(parts.path).split("/")
    if any(seg in (".", "..") for seg in segments):
        return None
    return _Origin(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], parts.path.rstrip("/"))


class RedirectAllowList:
    """The frontend URLs the OAuth flow may redirect to; the first one is the default."""

    def __init__(self, urls: Sequence[str]) -> None:
        parsed = [(_parse(u), u) for u in urls]
        bad = [u for p, u in parsed if p is None]
        if bad or not parsed:
            raise ValueError(f"ARTI_FRONTEND_URLS has unusable entries: {bad or '(empty)'}")
        self._entries = [p for p, _ in parsed if p is not None]
        self.default = urls[0]

    def allows(self, url: str) -> bool:
        """True when `url` is at or under one of the allowed frontend URLs."""
        candidate = _parse(url)
        if candidate is None:
            return False
        for entry in self._entries:
            if (candidate.scheme, candidate.host, candidate.port) != (entry.scheme, entry.host, entry.port):
                continue
            if not entry.path or candidate.path == entry.path or candidate.path.startswith(entry.path + "/"):
                return True
        return False

    def resolve(self, url: str | None) -> str | None:
        """`url` when allowed (the default when none is given), else None."""
        if url is None or url == "":
            return self.default
        return url if self.allows(url) else None


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to (or replacing the same names in) its query string."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend((k, v) for k, v in params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
