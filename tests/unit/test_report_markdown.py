"""`toolkit diff --markdown`: what a record holds stays in its table cell, as GitHub renders it."""

from __future__ import annotations

import html
import itertools
import json
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt  # rich's Markdown renderer: GitHub's tables, `\|` included

from tests.unit import test_diff_records
from toolkit.diff import Run, diff_runs
from toolkit.report import diff_html, diff_markdown

COMMAND = ["sh", "-c", "echo `date` | tee log 2>&1"]
# what an environment variable may hold, backticks and pipes included
VALUES = {
    "V_TICK": "a`b",
    "V_TICKS": "`x` and ``y``",
    "V_EDGE": "`",
    "V_SPACED": " x ",
    "V_PIPE": "x|y\\|z",
    "V_LINES": "one\ntwo",
}


def record(run_id: str, **extra: Any) -> dict[str, Any]:
    doc = test_diff_records.record(run_id, [1.0], **{"host_environment": {}, **extra})
    doc["metrics"] = {"primary": "val|loss", "series": {"val|loss": [[0, 1.0]]}, "patterns": {}}
    return doc


def runs(tmp_path: Path) -> tuple[Run, Run]:
    a = record(
        "a",
        command=COMMAND,
        host_environment=VALUES,
        outputs={"files": {"out|1.txt": "1" * 64}},
    )
    a["metrics"]["patterns"] = {"loss": r"(?:loss|cost)=(\S+)"}
    a["metrics"]["series"]["val|loss"] = [[0, 2.0]]
    b = record("b")
    b["metrics"]["patterns"] = {"loss": r"loss=(\S+)"}
    return Run(a, tmp_path / "a"), Run(b, tmp_path / "b")


def tables(markdown: str) -> list[list[list[str]]]:
    """Each table as GitHub shows it: rows of cells, each cell's inline HTML."""
    md = MarkdownIt("commonmark").enable("table")
    found: list[list[list[str]]] = []
    tokens = md.parse(markdown)
    for before, token in itertools.pairwise(tokens):
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            found[-1].append([])
        elif token.type == "inline" and before.type in ("th_open", "td_open"):
            cell = md.renderer.renderInline(token.children or [], md.options, {})
            found[-1][-1].append(cell)
    return found


def cells_per_row(line: str) -> int:
    """How many cells GitHub splits a row into: at each `|` that no backslash escapes."""
    pipes = [i for i, c in enumerate(line) if c == "|" and (i == 0 or line[i - 1] != "\\")]
    return len(pipes) - 1


def test_diff_markdown_keeps_pipes_and_backticks_in_their_cells(tmp_path: Path) -> None:
    """A metrics pattern `(?:loss|cost)=(\\S+)` split its row into more cells, and a backtick
    in a backticked value ended its code span."""
    markdown = diff_markdown(diff_runs(*runs(tmp_path)))
    assert (
        "| settings | metrics patterns | `loss: (?:loss\\|cost)=(\\S+)` | `loss: loss=(\\S+)` |"
    ) in markdown
    blocks = "\n".join(line if line.startswith("|") else "" for line in markdown.splitlines())
    for block in filter(None, blocks.split("\n\n")):
        header, *rows = block.strip("\n").splitlines()
        assert [cells_per_row(row) for row in rows] == [cells_per_row(header)] * len(rows)
    inputs, metrics, outputs = tables(markdown)
    shown = {(category, field): (a, b) for category, field, a, b in inputs[1:]}
    code = "<code>{}</code>".format
    assert shown["settings", "metrics patterns"] == (
        code(r"loss: (?:loss|cost)=(\S+)"),
        code(r"loss: loss=(\S+)"),
    )
    assert shown["code", "command"] == (
        code(html.escape(json.dumps(COMMAND))),
        code(html.escape(json.dumps(["python", "train.py"]))),
    )
    for name, value in VALUES.items():
        a, b = shown["environment", f"env {name}"]
        assert (a, b) == (code(html.escape(" ".join(value.splitlines()))), code("none")), name
    assert metrics[1][0] == "val|loss"
    assert outputs[1][:2] == ["out|1.txt", "only in A"]


def test_diff_html_escapes_what_the_markdown_keeps_in_cells(tmp_path: Path) -> None:
    a, b = runs(tmp_path)
    page = diff_html(diff_runs(a, b), a, b)
    assert f"<td>{html.escape(json.dumps(COMMAND))}</td>" in page
    assert "<td>loss: (?:loss|cost)=(\\S+)</td>" in page
    assert "<td>out|1.txt</td>" in page
    assert "2>&1" not in page and "2&gt;&amp;1" in page
