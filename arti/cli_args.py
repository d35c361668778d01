"""Argument types and the parser class of the `arti` command: bad input is one line saying what to do."""

from __future__ import annotations

import argparse
from typing import NoReturn


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds above 0 (at most a day)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"{value:g} is not between 0 and 86400 seconds")
    return value


def uuid_text(text: str) -> str:
    """argparse type: a UUID (as Postgres would read it), returned in its canonical form."""
    import uuid

    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UUID (e.g. 00000000-0000-4000-d000-000000000001)") \
            from None


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line saying what to do (exit status 2), not usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"arti: error: {self.prog}: {message} (see `{self.prog} --help`)\n")
