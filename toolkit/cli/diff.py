"""`toolkit diff`: compare two runs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.app import TargetsOption, app, errors_exit, options, output
from toolkit.errors import UserError
from toolkit.paths import check_destination

RtolOption = Annotated[float | None, typer.Option("--rtol", min=0, help="Relative tolerance.")]
AtolOption = Annotated[float | None, typer.Option("--atol", min=0, help="Absolute tolerance.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print versioned JSON.")]
MarkdownOption = Annotated[bool, typer.Option("--markdown", help="Print Markdown (CI summary).")]
HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
]


@app.command("diff")
@errors_exit(2)
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

    Exit 0: identical or within tolerance.

    Exit 1: diverged.

    Exit 2: nothing to compare (neither run recorded metrics or outputs), or an error.
    """
    from toolkit import report
    from toolkit.diff import diff_runs, tolerance_policy
    from toolkit.runref import load_runs

    _check_html(html)
    cfg = options().load_optional()
    root = cfg.root if cfg else Path.cwd()
    page = None
    with tempfile.TemporaryDirectory(prefix="toolkit-diff-") as scratch:
        (a,) = load_runs(root, run_a, Path(scratch) / "a", single=True)
        (b,) = load_runs(root, run_b, Path(scratch) / "b", single=True)
        policy = tolerance_policy(cfg.compare if cfg else None, rtol, atol)
        result = diff_runs(a, b, policy)
        if html:
            page = report.diff_html(result, a, b)
    if json_output:
        output.as_json(report.diff_json(result))
    elif markdown:
        output.info(report.diff_markdown(result))
    else:
        for line in report.diff_text(result, show_all=show_all):
            output.info(line)
    if html and page is not None:
        _write_html(html, page)
    if result.verdict == "not_compared":
        raise typer.Exit(2)  # no comparison is no match: neither "same" (0) nor "differ" (1)
    if result.verdict == "diverged":
        raise typer.Exit(1)


@app.command("repro-check")
@errors_exit(2)
def repro_check_command(
    target: TargetsOption = None,
    runs: Annotated[int, typer.Option("--runs", "-n", min=1, help="Runs per target.")] = 2,
    vary: Annotated[
        list[str] | None,
        typer.Option("--vary", help="Also run once per value, e.g. threads=1,4 or workers=0,2."),
    ] = None,
    against: Annotated[
        list[str] | None,
        typer.Option("--against", help="Run records from elsewhere: bundle, folder, or run id."),
    ] = None,
    native: Annotated[bool, typer.Option("--native", help="Run without containers.")] = False,
    rtol: RtolOption = None,
    atol: AtolOption = None,
    json_output: JsonOption = False,
    markdown: MarkdownOption = False,
    html: HtmlOption = None,
) -> None:
    """Run the experiment N times per target (and per variation), compare every run to a control.

    Exit 0: every comparison is identical or within tolerance.

    Exit 1: a comparison diverged (even where another had nothing to compare).

    Exit 2: the check could not be made (a run failed, or nothing to compare), or an error.
    """
    from toolkit import reprocheck, run
    from toolkit.diff import Run, tolerance_policy
    from toolkit.errors import ConfigError
    from toolkit.record import read_record
    from toolkit.runref import load_runs

    _check_html(html)  # before the runs, which take a while
    cfg = options().load()
    targets = [cfg.target(t).name for t in target] if target else [cfg.default_target().name]
    variations = reprocheck.parse_variations(vary or [])
    tolerances = tolerance_policy(cfg.compare, rtol, atol)  # refused before the runs, not after
    if runs * len(targets) < 2 and not variations and not against:
        raise ConfigError(
            "nothing to compare: --runs 1 on one target makes a single run",
            hint="use --runs 2 or more, --vary (e.g. threads=1), or --against a run from elsewhere",
        )

    warned: set[str] = set()

    def run_one(name: str, variation: reprocheck.Variation | None, index: int) -> Run:
        def knob(key: str) -> int | None:
            return variation.value if variation and variation.name == key else None

        req = run.request(
            cfg,
            name,
            None,
            native=native,
            seed=knob("seed"),
            threads=knob("threads"),
            workers=knob("workers"),
        )
        shown = reprocheck.target_label(name, native=native)  # as the groups are labelled
        label = f"{shown} {variation.label}" if variation else f"{shown} #{index + 1}"
        with output.progress(f"run {label}"):
            result = run.execute(
                cfg, req, on_stdout=lambda _: None, on_stderr=lambda _: None, on_note=output.note
            )
        ended = f" (exit code {result.exit_code})" if result.exit_code not in (0, None) else ""
        output.note(f"  {label}: {result.id} {result.status}{ended}")
        for warning in result.warnings:  # what `toolkit run` would say, once per check
            if warning not in warned:
                warned.add(warning)
                output.warn(warning)
        if result.status == "interrupted" or result.stopped:  # Ctrl-C stops the whole check
            raise KeyboardInterrupt
        return Run(read_record(result.path), result.path)

    page = None
    with tempfile.TemporaryDirectory(prefix="toolkit-repro-") as scratch:
        outside = [
            found
            for i, ref in enumerate(against or [])
            for found in load_runs(cfg.root, ref, Path(scratch) / str(i))
        ]
        # said before the runs, which take a while
        control = run.identity(cfg, run.request(cfg, targets[0], None, native=native))
        outside, left_out = reprocheck.comparable(outside, control)
        for reason in left_out:
            output.note(reason)
        if against and not outside:
            raise ConfigError(
                "nothing to compare from --against: every run there is another experiment",
                hint="`toolkit diff RUN_A RUN_B` compares any two runs",
            )
        groups = reprocheck.collect(targets, runs, variations, run_one, native=native)
        groups += reprocheck.imported_groups(outside)
        result = reprocheck.compare(groups, tolerances)
        if html:  # while imported runs are still unpacked
            from toolkit.report import repro_html

            page = repro_html(result)
    if json_output:
        output.as_json(reprocheck.as_json(result))
    elif markdown:
        from toolkit.report import repro_markdown

        output.info(repro_markdown(result))
    else:
        from toolkit.report import REPRO_HEADERS, repro_rows

        if result.pairs:
            output.table(REPRO_HEADERS, repro_rows(result))
        output.info(result.summary)
    for failed in result.failed:
        log = failed.run.folder / "stderr.log"
        if log.is_file():  # imported runs were unpacked in a folder that is gone by now
            shown = log.relative_to(Path.cwd()) if log.is_relative_to(Path.cwd()) else log
            output.note(f"{failed.label} {failed.status}: its output is in {shown}")
    if html and page is not None:
        _write_html(html, page)
    if result.verdict in ("failed", "not_compared"):
        raise typer.Exit(2)  # the check could not be made: neither "same" (0) nor "differ" (1)
    if result.verdict == "diverged":
        raise typer.Exit(1)


def _check_html(html: Path | None) -> None:
    """An --html path that cannot be written is said before any work."""
    if html is not None:
        check_destination(html, "report.html")


def _write_html(html: Path, page: str) -> None:
    """Write the report once the results are shown: a failed write loses nothing printed."""
    try:
        html.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the HTML report {html}: {exc.strerror or exc}") from None
    output.note(f"HTML report: {html}")
