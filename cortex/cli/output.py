"""How the CLI prints: ``-o json``, tables and text blocks, and errors (SPEC 11.1 / 12.1).

Errors go to stderr as ``error: <message>`` (first line bold on a terminal) and the command exits
1. Consoles are made per call so that whatever ``sys.stdout`` / ``sys.stderr`` are at that moment
(a terminal, a pipe, a test runner's buffer) receive the text; markup, highlighting and wrapping
are off, so what the operator sent is printed verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from cortex.cli.tables import Table


class OutputFormat(StrEnum):
    PRETTY = "pretty"
    JSON = "json"


def console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def print_text(text: str, *, bold: bool = False) -> None:
    console().print(Text(text, style="bold" if bold else ""))


def print_blocks(blocks: Iterable[Table | Text | str], *, out: Console | None = None) -> None:
    """Print tables and text one after the other, separated by a blank line."""
    target = out or console()
    for i, block in enumerate(blocks):
        if i:
            target.print()
        target.print(block.render() if isinstance(block, Table) else block)


def error_text(message: str) -> Text:
    first, _, rest = f"error: {message}".partition("\n")
    text = Text()
    text.append(first, style="bold")
    if rest:
        text.append("\n" + rest)
    return text


def print_error(message: str) -> None:
    console(stderr=True).print(error_text(message))


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` and return the exit to raise: ``raise fail("...")``."""
    print_error(message)
    return typer.Exit(1)
