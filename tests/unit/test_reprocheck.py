"""repro-check's grouping and one-line answer, on real runs from shared/data/gpu-reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import REFERENCE, reference_run
from toolkit import reprocheck
from toolkit.diff import Run
from toolkit.errors import ConfigError
from toolkit.record import read_record
from toolkit.reprocheck import Group, Variation

needs_reference = pytest.mark.skipif(
    not (REFERENCE / "README.md").is_file(), reason=f"no reference runs at {REFERENCE}"
)


def runs(tmp_path: Path, *names: str) -> tuple[Run, ...]:
    folders = [reference_run(name, tmp_path) for name in names]
    return tuple(Run(read_record(f), f) for f in folders)


@needs_reference
def test_summary_answers_the_team_question(tmp_path: Path) -> None:
    groups = [
        Group(
            "cpu", "target", "cpu", None, runs(tmp_path, "cpu-threads16-run1", "cpu-threads16-run2")
        ),
        Group(
            "cpu threads=4",
            "variation",
            "cpu",
            Variation("threads", 4),
            runs(tmp_path, "cpu-threads4-run1"),
        ),
        Group("gpu", "target", "gpu", None, runs(tmp_path, "gpu-default-run1", "gpu-default-run2")),
    ]
    report = reprocheck.compare(groups)
    assert report.verdict == "diverged"
    assert report.summary.startswith("reproducible on cpu (2/2 identical); NOT reproducible on gpu")
    assert "first at step 4" in report.summary  # gpu default runs part at step 4
    assert "gpu differs from cpu by" in report.summary
    assert report.summary.endswith("thread count changes results (threads=4)")
    roles = [(p.role, p.group, p.diff.verdict) for p in report.pairs]
    assert roles == [
        ("noise", "cpu", "identical"),
        ("gap", "cpu threads=4", "diverged"),
        ("noise", "gpu", "diverged"),
        ("gap", "gpu", "diverged"),
    ]


@needs_reference
def test_deterministic_gpu_is_reproducible(tmp_path: Path) -> None:
    groups = [
        Group(
            "gpu",
            "target",
            "gpu",
            None,
            runs(tmp_path, "gpu-deterministic-run1", "gpu-deterministic-run2"),
        )
    ]
    report = reprocheck.compare(groups)
    assert report.verdict == "identical"
    assert report.summary == "reproducible on gpu (2/2 identical)"


def test_parse_variations() -> None:
    assert reprocheck.parse_variations(["threads=1,4", "workers=0"]) == [
        Variation("threads", 1),
        Variation("threads", 4),
        Variation("workers", 0),
    ]
    for bad in ("threads", "cores=1", "threads=0", "threads=a"):
        with pytest.raises(ConfigError):
            reprocheck.parse_variations([bad])


def test_imported_runs_are_grouped_by_machine_and_target(tmp_path: Path) -> None:
    records = [
        {"target": "cpu", "host": {"hostname": "box1"}},
        {"target": "cpu", "host": {"hostname": "box1"}},
        {"target": "cpu", "native": True, "host": {"hostname": "box1"}},
        {"target": "cpu", "host": None},  # incomplete: its facts were skipped
    ]
    groups = reprocheck.imported_groups([Run(r, tmp_path / str(i)) for i, r in enumerate(records)])
    assert [(g.label, len(g.runs)) for g in groups] == [
        ("cpu on box1", 2),
        ("cpu native on box1", 1),
        ("cpu on an unnamed host", 1),
    ]
