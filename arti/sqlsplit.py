"""Split a SQL script into statements, as the Supabase CLI does before recording a migration.

Understands single-quoted strings (including E'' escapes), quoted identifiers, dollar-quoted bodies,
line comments and nested block comments, so semicolons inside any of them do not split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


@dataclass(frozen=True)
class Statement:
    """One statement of a script and the 1-based line of the script it starts on."""

    text: str
    line: int


def split_statements(script: str) -> list[Statement]:
    """Return the non-empty statements of `script`, without their terminating semicolons."""
    statements: list[Statement] = []
    i, n = 0, len(script)
    start = 0
    while i < n:
        ch = script[i]
        nxt = script[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = script.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if script.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif script.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif ch == "'":
            escapes = i > 0 and script[i - 1] in "eE" and (i < 2 or not script[i - 2].isalnum())
            i += 1
            while i < n:
                if escapes and script[i] == "\\":
                    i += 2
                elif script[i] == "'":
                    if i + 1 < n and script[i + 1] == "'":
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    i += 1
        elif ch == '"':
            end = script.find('"', i + 1)
            i = n if end < 0 else end + 1
        elif ch == "$" and (i == 0 or not (script[i - 1].isalnum() or script[i - 1] == "_")):
            match = _DOLLAR_TAG.match(script, i)
            if match:
                tag = match.group(0)
                end = script.find(tag, match.end())
                i = n if end < 0 else end + len(tag)
            else:
                i += 1
        elif ch == ";":
            _append(statements, script, start, i)
            i += 1
            start = i
        else:
            i += 1
    _append(statements, script, start, n)
    return statements


def _append(statements: list[Statement], script: str, start: int, end: int) -> None:
    chunk = script[start:end]
    if not _has_code(chunk):
        return
    leading = len(chunk) - len(chunk.lstrip())
    line = script.count("\n", 0, start + leading) + 1
    statements.append(Statement(chunk.strip(), line))


def _has_code(chunk: str) -> bool:
    """True when the chunk holds more than whitespace and comments."""
    without_block = re.sub(r"/\*.*?\*/", "", chunk, flags=re.S)
    without_line = re.sub(r"--[^\n]*", "", without_block)
    return bool(without_line.strip())
