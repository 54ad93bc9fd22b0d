"""Errors that are the user's to fix: the CLI prints them on one line, without a traceback."""

from __future__ import annotations


class CfxlError(Exception):
    """A user mistake or bad input; the message says what is wrong and where."""


OPTIONS = {"n_factors": "--factors", "weight_decay": "--wd"}  # fields whose option is named otherwise


def option(name: str) -> str:
    """A setting as the user typed it on the command line, with the library's name beside it
    where the two differ: '--epochs', '--slice-users (slice_users)', '--factors (n_factors)'."""
    typed = OPTIONS.get(name, "--" + name.replace("_", "-"))
    return typed if typed == f"--{name}" else f"{typed} ({name})"


class DataError(CfxlError):
    """Bad ratings data, located by file and, where known, line and column."""

    def __init__(self, path, message: str, *, line: int | None = None, column: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(printable(f"{where}: {message}"))
        self.path, self.line, self.column = str(path), line, column


def printable(text: str, limit: int | None = None) -> str:
    """Text with every character a terminal would act on (control bytes of binary input,
    escape sequences) written as its Python escape, so a message shows what a file holds; with
    limit, at most that many characters of it, then '...'."""
    if text.isprintable() and (limit is None or len(text) <= limit):
        return text
    out, n = [], 0
    for c in text:
        piece = c if c.isprintable() else repr(c)[1:-1]
        if limit is not None and n + len(piece) > limit:
            return "".join(out) + "..."
        out.append(piece)
        n += len(piece)
    return "".join(out)


def shown(value, limit: int = 40) -> str:
    """A value read from a file as a message quotes it: repr-style (non-printable characters
    escaped) and cut to limit characters, saying how long it was."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


class UnknownIdError(CfxlError, KeyError):
    """An id that the model never saw, with the likely reason."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
