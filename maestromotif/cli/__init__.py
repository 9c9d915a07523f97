"""The ``maestromotif`` command line.

The CLI sits on top of everything: it may import services and the library,
and nothing imports it. Each area registers its commands from its own module
(``maestromotif/cli/<area>.py`` exposing ``register(app)``), so that work on
one area never touches another's file.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="maestromotif",
    help="MaestroMotif: LLM-designed skills for NetHack, as services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that add commands; each exposes register(app: typer.Typer) -> None.
_COMMAND_MODULES = (
    "maestromotif.cli.services",  # serve, up
    "maestromotif.cli.env",  # tasks, env run
    "maestromotif.cli.annotate",  # collect, annotate, annotate-eval
    "maestromotif.cli.reward",  # train-reward
    "maestromotif.cli.train",  # train, evaluate
    "maestromotif.cli.pipeline",  # pipeline (the whole method end to end)
    "maestromotif.cli.codegen",  # codegen skills|training-policy|validate|show|list, compose
    "maestromotif.cli.agent",  # eval (the nine tasks), play (live episode through the Agent API)
)



@app.callback()
def _root() -> None:
    """MaestroMotif: LLM-designed skills for NetHack, as services."""


@app.command()
def version() -> None:
    """Print the maestromotif version."""
    from maestromotif import __version__

    typer.echo(__version__)


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()
