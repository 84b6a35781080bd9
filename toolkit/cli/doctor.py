"""`toolkit doctor`: check the engine, GPUs, disk and images."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.app import app, options, output


@app.command("doctor")
def doctor_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print versioned JSON.")] = False,
) -> None:
    """Check this machine: Docker Engine, NVIDIA runtime, GPUs and driver, disk, images."""
    from toolkit import doctor

    checks = doctor.diagnose(options().load_optional())
    if json_output:
        output.as_json(doctor.as_json(checks))
    else:
        for check in checks:
            output.status_line(check.status, check.name, check.detail, check.fix)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)
