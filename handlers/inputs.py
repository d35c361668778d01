"""Client input, bounded at the edge before it reaches Postgres or a parser.

Every value a client sends (query string, path, JSON body) passes here first, so what a handler works
with is something Postgres can store and our parsers can read:

* :class:`Input` is the base of every request model: each of its string fields is refused (400) when it
  holds a NUL byte (Postgres `text` cannot store one), another control character except tab, line feed
  and carriage return, or an unpaired UTF-16 surrogate (it cannot be encoded as UTF-8);
* :func:`json_body` reads a JSON object of at most :data:`MAX_JSON_BODY_BYTES` (413 beyond, whatever
  Content-Length says) nested at most :data:`MAX_JSON_DEPTH` levels (400 beyond, before the parser could
  recurse into a RecursionError); invalid UTF-8, non-JSON and numbers Python refuses to convert are 400s.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, field_validator
from starlette.requests import Request

from handlers.errors import HandlerError, json_object

MAX_JSON_BODY_BYTES = 64 * 1024
"""The largest body a handler reads (a question of 2,000 characters fits many times over)."""
MAX_JSON_DEPTH = 8
"""Deepest nesting of arrays and objects accepted (our bodies are flat objects)."""

_UNSAFE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def check_text(value: str) -> str:
    """`value` when Postgres can store it and it carries no control character but tab, CR and LF."""
    if _UNSAFE_TEXT.search(value):
        raise ValueError("must not contain NUL bytes, control characters or unpaired surrogates")
    return value


class Input(BaseModel):
    """Base of the handlers' request models: every string field goes through :func:`check_text`."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            check_text(value)
        return value


def nesting_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


async def read_body(request: Request, limit: int = MAX_JSON_BODY_BYTES) -> bytes:
    """The request body, refused with 413 as soon as it is longer than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HandlerError(413, "payload_too_large", f"the request body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HandlerError(413, "payload_too_large", f"the request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, expected: str) -> dict[str, Any]:
    """The request's JSON object, bounded in size and depth; `expected` shows the shape in the 400 message."""
    raw = await read_body(request)
    try:
        value = json.loads(raw)
    except RecursionError:
        value = None
        too_deep = True
    except ValueError:  # not JSON, not UTF-8, or an integer too long to convert
        raise HandlerError(400, "invalid_json", f"send a JSON object: {expected}") from None
    else:
        too_deep = nesting_depth(value) > MAX_JSON_DEPTH
    if too_deep:
        raise HandlerError(400, "invalid_json", f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
    return json_object(value)
