"""Errors that are the user's to fix: the CLI prints them on one line, without a traceback."""

from __future__ import annotations


class CfxlError(Exception):
    """A user mistake or bad input; the message says what is wrong and where."""


class DataError(CfxlError):
    """Bad ratings data, located by file and, where known, line and column."""

    def __init__(self, path, message: str, *, line: int | None = None, column: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.column = str(path), line, column


class UnknownIdError(CfxlError, KeyError):
    """An id that the model never saw, with the likely reason."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
