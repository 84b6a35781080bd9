"""`toolkit diff`: compare two runs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli import app, options, output

RtolOption = Annotated[float | None, typer.Option("--rtol", min=0, help="Relative tolerance.")]
AtolOption = Annotated[float | None, typer.Option("--atol", min=0, help="Absolute tolerance.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print versioned JSON.")]
MarkdownOption = Annotated[bool, typer.Option("--markdown", help="Print Markdown (CI summary).")]
HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
]


@app.command("diff")
def diff_command(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help="Run id, folder, or bundle.")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="Run id, folder, or bundle.")],
    rtol: RtolOption = None,
    atol: AtolOption = None,
    json_output: JsonOption = False,
    markdown: MarkdownOption = False,
    html: HtmlOption = None,
    show_all: Annotated[bool, typer.Option("--all", help="Show identical items too.")] = False,
) -> None:
    """Compare two runs: verdict, inputs that differ, metrics step by step, outputs per tensor.

    Exit 0 identical or within tolerance, 1 diverged, 2 error.
    """
    from toolkit import report
    from toolkit.compare import TolerancePolicy
    from toolkit.diff import diff_runs
    from toolkit.runref import load_runs

    cfg = options().load_optional()
    root = cfg.root if cfg else Path.cwd()
    with tempfile.TemporaryDirectory(prefix="toolkit-diff-") as scratch:
        (a,) = load_runs(root, run_a, Path(scratch) / "a", single=True)
        (b,) = load_runs(root, run_b, Path(scratch) / "b", single=True)
        result = diff_runs(a, b, TolerancePolicy.from_mapping(rtol=rtol, atol=atol))
        if html:
            html.write_text(report.diff_html(result, a, b), encoding="utf-8")
    if json_output:
        output.as_json(report.diff_json(result))
    elif markdown:
        output.info(report.diff_markdown(result))
    else:
        for line in report.diff_text(result, show_all=show_all):
            output.info(line)
    if html:
        output.info(f"HTML report: {html}")
    if result.verdict == "diverged":
        raise typer.Exit(1)
