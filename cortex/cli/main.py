"""The ``cortex`` command (alias ``cx``): a thin layer over :mod:`cortex.client` (SPEC 14.2).

Errors reach the user in one place, :class:`CortexGroup`: any ``CortexError`` raised by a
command prints ``error: <message>`` on stderr and exits 1 (SPEC 11.1); a wrong command line
exits 1 too (:func:`main`); unexpected exceptions keep their traceback, because they are bugs.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from cortex.cli import (
    cluster,
    completion,
    delete,
    deploy,
    describe,
    env,
    get,
    logs,
    refresh,
    version,
)
from cortex.cli.output import print_error
from cortex.errors import CortexError


class CortexGroup(TyperGroup):
    """The root group: turns every ``CortexError`` into ``error: ...`` and exit status 1."""

    # ``ctx`` is Typer's vendored click Context, which Typer does not export by that name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CortexError as exc:
            print_error(exc.message)
            raise typer.Exit(1) from exc


app = typer.Typer(
    cls=CortexGroup,
    name="cortex",
    help="Deploy, run and autoscale machine-learning workloads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("deploy")(deploy.deploy)
app.command("get")(get.get)
app.command("describe")(describe.describe)
app.command("logs")(logs.logs)
app.command("refresh")(refresh.refresh)
app.command("delete")(delete.delete)
app.add_typer(cluster.app, name="cluster")
app.add_typer(env.app, name="env")
app.command("version")(version.version)
app.command("completion")(completion.completion)


USAGE_EXIT_CODE = 2  # click's status for a wrong command line (unknown option, bad value)


def main() -> None:
    """Console-script entry point (``cortex`` and ``cx``).

    A wrong command line exits 1 like every other error (the original CLI's status; click's
    own is 2), after click has printed what was wrong and where to get help."""
    try:
        app()
    except SystemExit as exc:
        if exc.code == USAGE_EXIT_CODE:
            raise SystemExit(1) from None
        raise
