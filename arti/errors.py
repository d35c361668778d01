"""Errors the CLI and handlers report as one actionable line, never as a traceback."""


class ArtiError(Exception):
    """An error with a message that says what went wrong and what to do about it."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
