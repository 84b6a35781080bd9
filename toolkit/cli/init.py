"""`toolkit init`: scaffold toolkit.yaml, requirements.in, make targets and .gitignore entries."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.app import app, output

_DONE = {"created": "created", "overwritten": "overwrote", "appended": "updated"}


def _interactive() -> bool:
    return sys.stdin.isatty()


@app.command("init")
def init_command(
    directory: Annotated[
        Path, typer.Argument(help="The project folder (it must exist).", show_default=False)
    ] = Path("."),
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            help='The experiment command, e.g. "python train.py" (asked for when interactive).',
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Project name; default: the folder's name.")
    ] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="Add a gpu target beside cpu.")] = False,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data", help="Data path, fingerprinted apart from code; default: data/ if it exists."
        ),
    ] = None,
    outputs: Annotated[
        list[str] | None,
        typer.Option("--output", help="Output path to hash and compare; default: outputs/."),
    ] = None,
    metrics_file: Annotated[
        str,
        typer.Option(
            "--metrics-file", help='JSON-lines metrics file the experiment writes ("" for none).'
        ),
    ] = "metrics.jsonl",
    primary: Annotated[
        str, typer.Option("--primary", help="The metric diff and repro-check lead with.")
    ] = "loss",
    requirement: Annotated[
        list[str] | None,
        typer.Option(
            "--requirement",
            "-r",
            help="A top-level dependency for requirements.in; default: include requirements.txt "
            "if it exists.",
        ),
    ] = None,
    python: Annotated[str, typer.Option("--python", help="Python version of the images.")] = "3.11",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Overwrite toolkit.yaml and the make block (requirements.in only with -r).",
        ),
    ] = False,
) -> None:
    """Start using toolkit in an existing project; never overwrites a file without --force."""
    from toolkit.config import CONFIG_FILE
    from toolkit.scaffold import MAKEFILE, REQUIREMENTS_FILE, InitOptions, write_scaffold

    needs_command = not (directory / CONFIG_FILE).exists()  # --force keeps the one it has
    if command is None and needs_command and _interactive():
        command = typer.prompt("Command that runs the experiment", default="python train.py")
    done = write_scaffold(
        directory,
        InitOptions(
            command=command,
            name=name,
            python=python,
            gpu=gpu,
            data=tuple(data) if data else None,
            outputs=tuple(outputs) if outputs else None,
            metrics_file=metrics_file or None,
            primary=primary or None,
            requirements=tuple(requirement or ()),
        ),
        force=force,
    )
    for file in done.files:
        shown = file.path.relative_to(directory)
        detail = f" ({file.detail})" if file.detail else ""
        if file.action == "skipped":
            output.info(f"  kept {shown}: {file.detail}")
        else:
            output.success(f"{_DONE[file.action]} {shown}{detail}")
    makefile = next(f for f in done.files if f.path.name == MAKEFILE)
    has_make = makefile.action != "skipped" or makefile.detail.startswith("already has")
    then = "`make cpu-run`" if has_make else "`toolkit base`, `toolkit build`, `toolkit run`"
    reqs = next(f for f in done.files if f.path.name == REQUIREMENTS_FILE)
    template = not requirement and reqs.action != "skipped" and not reqs.detail  # no list yet
    first = "list your dependencies in requirements.in, then " if template else ""
    output.info(f"next: {first}`toolkit lock` and {then}")
