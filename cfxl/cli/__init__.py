"""The `cfxl` command line: a thin shell over the library (each command a few library calls),
one module per family of commands, all on one click group (cfxl.cli.base.cli)."""

import functools

from cfxl.cli import books, data, model, proof, use  # noqa: F401 (each registers its commands)
from cfxl.cli.base import cli
from cfxl.io import run_interruptible

__all__ = ["cli", "main"]

main = functools.partial(run_interruptible, cli, prog_name="cfxl")  # SIGTERM unwinds as Ctrl-C
