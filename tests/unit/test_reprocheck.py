"""repro-check's grouping and one-line answer, on real runs from shared/data/gpu-reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import REFERENCE, reference_run, toolkit
from toolkit import reprocheck
from toolkit.diff import Run
from toolkit.errors import ConfigError
from toolkit.record import read_record
from toolkit.report import repro_rows
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
    assert report.summary.startswith(
        "reproducible on cpu (2 runs, all identical); NOT reproducible on gpu (2 runs, 1 differs "
        "from the first; runs differ by 0.855% in loss"
    )
    assert "first at step 4" in report.summary  # gpu default runs part at step 4
    # gpu's default runs differ by 0.855% between repeats; its 300 steps end 19.5% below the
    # cpu runs' 60 (at step 59, the last both logged, they were 0.0093% apart): over 10 times
    # the noise, so named
    assert "gpu differs from cpu by 19.5% in loss, first at step 0;" in report.summary
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
    assert report.summary == "reproducible on gpu (2 runs, all identical)"


def test_parse_variations() -> None:
    assert reprocheck.parse_variations(["threads=1,4", "workers=0"]) == [
        Variation("threads", 1),
        Variation("threads", 4),
        Variation("workers", 0),
    ]
    for bad in ("threads", "cores=1", "threads=0", "threads=a", "seed=-1", f"seed={2**32}"):
        with pytest.raises(ConfigError):
            reprocheck.parse_variations([bad])
    with pytest.raises(ConfigError, match="seed takes integers from 0 to 4294967295"):
        reprocheck.parse_variations(["seed=1,4294967296"])


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
        ("cpu (native) on box1", 1),
        ("cpu on an unnamed host", 1),
    ]


def made(tmp_path: Path, run_id: str, *, status: str = "succeeded", **extra: object) -> Run:
    """A hand-made run record: loss 1.0, 0.5 unless `series` says otherwise."""
    exit_code = {"succeeded": 0, "failed": 3}.get(status)
    series = extra.pop("series", [[0, 1.0], [1, 0.5]])
    record = {
        "id": run_id,
        "project": "p",
        "target": "cpu",
        "status": status,
        "exit_code": exit_code,
        "metrics": {"primary": "loss", "series": {"loss": series}},
        "outputs": {"files": {}},
        **extra,
    }
    return Run(record, tmp_path / run_id)


def target(label: str, *found: Run) -> Group:
    return Group(label, "target", label, None, found)


def test_runs_that_all_failed_are_not_reproducible_but_named(tmp_path: Path) -> None:
    report = reprocheck.compare(
        [
            target(
                "cpu", made(tmp_path, "r1", status="failed"), made(tmp_path, "r2", status="failed")
            )
        ]
    )
    assert report.verdict == "failed"
    assert report.pairs == ()  # a failed run is compared with nothing
    assert report.summary == (
        "could not check reproducibility: 2 of 2 runs did not succeed: "
        "cpu #1 r1 failed with exit code 3, cpu #2 r2 failed with exit code 3"
    )
    assert [(f.label, f.status, f.exit_code) for f in report.failed] == [
        ("cpu #1", "failed", 3),
        ("cpu #2", "failed", 3),
    ]


def test_one_failed_run_is_named_and_not_counted_as_a_difference(tmp_path: Path) -> None:
    report = reprocheck.compare(
        [target("cpu", made(tmp_path, "r1"), made(tmp_path, "r2", status="failed"))]
    )
    assert report.verdict == "failed"
    assert report.summary == (
        "could not check reproducibility: 1 of 2 runs did not succeed: "
        "cpu #2 r2 failed with exit code 3"
    )


def test_a_failed_target_does_not_match_the_control(tmp_path: Path) -> None:
    lost = made(tmp_path, "g1", status="engine_lost", exit_code=None)
    report = reprocheck.compare(
        [
            target("cpu", made(tmp_path, "c1"), made(tmp_path, "c2")),
            target("gpu", lost, made(tmp_path, "g2", status="failed")),
        ]
    )
    assert report.verdict == "failed"
    assert "gpu matches cpu" not in report.summary
    assert report.summary == (
        "could not check reproducibility: 2 of 4 runs did not succeed: "
        "gpu #1 g1 lost the Docker Engine, gpu #2 g2 failed with exit code 3; "
        "reproducible on cpu (2 runs, all identical)"
    )


def test_the_control_is_the_first_run_that_succeeded(tmp_path: Path) -> None:
    report = reprocheck.compare(
        [
            target("cpu", made(tmp_path, "c1", status="failed"), made(tmp_path, "c2")),
            target("gpu", made(tmp_path, "g1")),
        ]
    )
    assert report.control == "cpu (c2)"
    assert [(p.role, p.group, p.diff.verdict) for p in report.pairs] == [
        ("gap", "gpu", "identical")
    ]
    assert report.verdict == "failed"


def test_failed_imported_runs_and_variations_are_named(tmp_path: Path) -> None:
    imported = reprocheck.imported_groups(
        [made(tmp_path, "far", status="failed", host={"hostname": "vm"})]
    )
    varied = Group(
        "cpu threads=1",
        "variation",
        "cpu",
        Variation("threads", 1),
        (made(tmp_path, "v1", status="failed"),),
    )
    report = reprocheck.compare([target("cpu", made(tmp_path, "c1")), varied, *imported])
    assert report.verdict == "failed"
    assert "cpu threads=1 v1 failed with exit code 3" in report.summary
    assert "cpu on vm far failed with exit code 3" in report.summary
    assert "does not change results" not in report.summary  # threads=1 was never compared
    doc = reprocheck.as_json(report)
    assert doc["verdict"] == "failed"
    assert doc["failed"] == [
        {
            "group": "cpu threads=1",
            "label": "cpu threads=1",
            "run": "v1",
            "status": "failed",
            "exit_code": 3,
        },
        {
            "group": "cpu on vm",
            "label": "cpu on vm",
            "run": "far",
            "status": "failed",
            "exit_code": 3,
        },
    ]


def test_a_single_run_is_not_compared_rather_than_identical(tmp_path: Path) -> None:
    report = reprocheck.compare([target("cpu", made(tmp_path, "c1"))])
    assert report.verdict == "not_compared"
    assert report.pairs == ()
    assert report.summary == (
        "nothing compared: only one run, and no other run to compare it with; cpu: 1 run"
    )
    assert reprocheck.as_json(report)["verdict"] == "not_compared"


def test_a_nan_against_a_number_is_named_in_the_summary(tmp_path: Path) -> None:
    nan = made(tmp_path, "c2", series=[[0, 1.0], [1, float("nan")]])
    report = reprocheck.compare([target("cpu", made(tmp_path, "c1"), nan)])
    assert report.verdict == "diverged"
    assert report.summary == (
        "NOT reproducible on cpu (2 runs, 1 differs from the first; runs differ in loss: 0.5 vs "
        "nan at step 1)"
    )


def test_runs_that_both_reach_nan_at_the_same_step_are_identical(tmp_path: Path) -> None:
    series = [[0, 1.0], [1, float("nan")]]
    report = reprocheck.compare(
        [target("cpu", made(tmp_path, "c1", series=series), made(tmp_path, "c2", series=series))]
    )
    assert report.verdict == "identical"
    assert report.summary == "reproducible on cpu (2 runs, all identical)"


def test_one_run_with_nothing_to_compare_is_refused_before_it_runs(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text(
        "name: x\ntargets: {cpu: {}}\nexperiment: {command: python -V}\n"
    )
    result = toolkit("repro-check", "--runs", "1", "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "nothing to compare: --runs 1 on one target makes a single run" in result.stderr
    assert "--runs 2" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_markdown_of_failed_runs_warns_and_claims_nothing(tmp_path: Path) -> None:
    from toolkit.report import repro_markdown

    report = reprocheck.compare([target("cpu", made(tmp_path, "r1", status="failed"))])
    text = repro_markdown(report)
    assert text.startswith("### ⚠️ repro-check: could not check reproducibility: 1 of 1 runs")
    assert "| compare |" not in text  # no comparison was made


def varied(
    tmp_path: Path, label: str, run_id: str, loss: float, on: str = "cpu", first: float = 1.0
) -> Group:
    """A variation's one run, `label` as `threads=1`: loss `first`, then `loss`."""
    found = made(tmp_path, run_id, series=[[0, first], [1, loss]])
    name, value = label.split("=")
    return Group(f"{on} {label}", "variation", on, Variation(name, int(value)), (found,))


def repeats(tmp_path: Path, label: str, *losses: float) -> Group:
    """A target's runs: loss 1.0, then each of `losses` in turn."""
    found = [
        made(tmp_path, f"{label}{i}", series=[[0, 1.0], [1, loss]])
        for i, loss in enumerate(losses, 1)
    ]
    return target(label, *found)


def primary_deltas(report: reprocheck.ReproReport) -> dict[str, str]:
    """The table's primary Δ column, by group (the largest where a group has several rows)."""
    shown: dict[str, str] = {}
    for row in repro_rows(report):
        if row[1] not in shown or float(row[4][:-1]) > float(shown[row[1]][:-1]):
            shown[row[1]] = row[4]
    return shown


def test_a_variation_is_not_blamed_for_what_repeated_runs_already_do(tmp_path: Path) -> None:
    noisy = repeats(tmp_path, "cpu", 0.5, 0.6)
    report = reprocheck.compare([noisy, varied(tmp_path, "threads=1", "v1", 0.55)])
    assert report.summary == (
        "NOT reproducible on cpu (2 runs, 1 differs from the first; runs differ by 16.7% in loss, "
        "first at step 1); cannot tell whether the thread count changes results (threads=1): "
        "repeated runs differ by up to 16.7% in loss (the gap is 9.09%)"
    )
    assert report.verdict == "diverged"  # the exit code is the table's: a comparison diverged


def test_a_variation_beside_identical_repeats_changes_results(tmp_path: Path) -> None:
    same = repeats(tmp_path, "cpu", 0.5, 0.5)
    report = reprocheck.compare([same, varied(tmp_path, "workers=2", "v1", 0.55)])
    assert report.summary == (
        "reproducible on cpu (2 runs, all identical); "
        "number of data-loader workers changes results (workers=2)"
    )


def test_a_gap_smaller_than_the_noise_is_not_a_cause_and_is_said_as_the_table_shows_it(
    tmp_path: Path,
) -> None:
    """Weighed by the table's primary Δ (final values), not by the worst step: the variation's
    runs are 50% apart at step 0, but end 1.96% apart, below the repeats' 16.7%."""
    noisy = repeats(tmp_path, "cpu", 0.5, 0.6)
    report = reprocheck.compare([noisy, varied(tmp_path, "threads=1", "v1", 0.51, first=2.0)])
    assert report.summary == (
        "NOT reproducible on cpu (2 runs, 1 differs from the first; runs differ by 16.7% in loss, "
        "first at step 1); cannot tell whether the thread count changes results (threads=1): "
        "repeated runs differ by up to 16.7% in loss (the gap is 1.96%)"
    )
    assert primary_deltas(report) == {"cpu": "16.7%", "cpu threads=1": "1.96%"}


def test_a_gap_beyond_the_noise_but_within_ten_times_it_is_not_a_cause(tmp_path: Path) -> None:
    noisy = repeats(tmp_path, "cpu", 0.5, 0.501)
    report = reprocheck.compare([noisy, varied(tmp_path, "threads=1", "v1", 0.51)])
    assert primary_deltas(report) == {"cpu": "0.2%", "cpu threads=1": "1.96%"}
    assert report.summary.endswith(
        "; cannot tell whether the thread count changes results (threads=1): repeated runs "
        "differ by up to 0.2% in loss (the gap is 1.96%)"
    )


def test_a_gap_a_hundred_times_the_noise_changes_results(tmp_path: Path) -> None:
    noisy = repeats(tmp_path, "cpu", 0.5, 0.5004)
    report = reprocheck.compare([noisy, varied(tmp_path, "threads=1", "v1", 0.55)])
    assert primary_deltas(report) == {"cpu": "0.0799%", "cpu threads=1": "9.09%"}
    assert report.summary == (
        "NOT reproducible on cpu (2 runs, 1 differs from the first; runs differ by 0.0799% in "
        "loss, first at step 1); thread count changes results (threads=1)"
    )


def test_one_run_per_group_names_no_cause(tmp_path: Path) -> None:
    """--runs 1: the noise is unknown, so no gap is blamed on a variation or a target."""
    one = repeats(tmp_path, "cpu", 0.5)
    report = reprocheck.compare(
        [
            one,
            varied(tmp_path, "threads=1", "v1", 0.55),
            varied(tmp_path, "threads=2", "v2", 0.5),
            varied(tmp_path, "seed=1", "v3", 0.5),
        ]
    )
    assert report.verdict == "diverged"  # the table still shows a diverged comparison: exit 1
    assert report.summary == (
        "cpu: 1 run; cannot tell whether the thread count changes results (threads=1): one run "
        "per group, so run-to-run noise was not measured (run with --runs 2 or more); "
        "seed does not change results"
    )
    report = reprocheck.compare([one, repeats(tmp_path, "gpu", 0.55)])
    assert report.summary == (
        "cpu: 1 run; gpu: 1 run; cannot tell whether gpu differs from cpu beyond run-to-run "
        "noise: one run per group, so run-to-run noise was not measured (run with --runs 2 or "
        "more)"
    )


def test_a_target_gap_within_either_groups_noise_is_not_a_cause(tmp_path: Path) -> None:
    noisy = repeats(tmp_path, "cpu", 0.5, 0.6)
    report = reprocheck.compare([noisy, repeats(tmp_path, "gpu", 0.51, 0.51)])
    assert report.summary.endswith(
        "; reproducible on gpu (2 runs, all identical); cannot tell whether gpu differs from cpu "
        "beyond run-to-run noise: repeated runs differ by up to 16.7% in loss (the gap is 1.96%)"
    )
    same = repeats(tmp_path, "cpu", 0.5, 0.5)
    report = reprocheck.compare([same, repeats(tmp_path, "gpu", 0.51, 0.51)])
    assert report.summary.endswith("; gpu differs from cpu by 1.96% in loss, first at step 1")


def test_repeats_are_counted_against_the_first_run(tmp_path: Path) -> None:
    """Two runs that differ are not "1/2 identical": the first is not a match of its own."""
    report = reprocheck.compare([repeats(tmp_path, "cpu", 0.5, 0.5, 0.6)])
    assert report.summary == (
        "NOT reproducible on cpu (3 runs, 1 differs from the first; runs differ by 16.7% in loss, "
        "first at step 1)"
    )
    report = reprocheck.compare([repeats(tmp_path, "cpu", 0.5, 0.55, 0.6)])
    assert report.summary == (
        "NOT reproducible on cpu (3 runs, 2 differ from the first; runs differ by up to 16.7% in "
        "loss, first at step 1)"
    )
    report = reprocheck.compare([repeats(tmp_path, "cpu", 0.5, 0.5, 0.5)])
    assert report.summary == "reproducible on cpu (3 runs, all identical)"


def test_variations_on_several_targets_are_weighed_against_their_own_targets_noise(
    tmp_path: Path,
) -> None:
    report = reprocheck.compare(
        [
            repeats(tmp_path, "cpu", 0.5, 0.5),
            varied(tmp_path, "threads=1", "v1", 0.55),
            repeats(tmp_path, "gpu", 0.5, 0.6),
            varied(tmp_path, "threads=1", "v2", 0.55, on="gpu"),
        ]
    )
    assert report.summary.endswith(
        "; thread count changes results (threads=1 on cpu); cannot tell whether the thread count "
        "changes results (threads=1 on gpu): repeated runs differ by up to 16.7% in loss (the "
        "gap is 9.09%)"
    )


def test_a_nan_in_the_gap_that_repeated_runs_lack_is_a_cause(tmp_path: Path) -> None:
    noisy = repeats(tmp_path, "cpu", 0.5, 0.6)
    report = reprocheck.compare([noisy, varied(tmp_path, "threads=1", "v1", float("nan"))])
    assert report.summary.endswith("; thread count changes results (threads=1)")
    nan = made(tmp_path, "c2", series=[[0, 1.0], [1, float("nan")]])
    report = reprocheck.compare(
        [target("cpu", made(tmp_path, "c1"), nan), varied(tmp_path, "threads=1", "v1", 0.55)]
    )
    assert report.summary.endswith(
        "; cannot tell whether the thread count changes results (threads=1): repeated runs "
        "differ in loss: 0.5 vs nan at step 1 (the gap is 9.09%)"
    )


def test_a_variation_is_compared_with_its_own_target_not_the_control(tmp_path: Path) -> None:
    cpu = target("cpu", made(tmp_path, "c1"))
    gpu = target("gpu", made(tmp_path, "g1", series=[[0, 1.0], [1, 0.7]]))
    same_as_gpu = varied(tmp_path, "threads=1", "v1", 0.7, on="gpu")
    report = reprocheck.compare([cpu, gpu, same_as_gpu])
    gaps = {
        p.group: (p.diff.a.split()[0], p.diff.b.split()[0]) for p in report.pairs if p.role == "gap"
    }
    assert gaps == {"gpu": ("c1", "g1"), "gpu threads=1": ("g1", "v1")}
    assert report.summary.endswith("; thread count does not change results")
    assert [row[:2] for row in repro_rows(report)] == [
        ["vs control", "gpu"],
        ["vs gpu", "gpu threads=1"],
    ]


def test_runs_from_elsewhere_of_another_experiment_are_left_out_and_each_run_counts_once(
    tmp_path: Path,
) -> None:
    """A folder of a teammate's runs holds one-offs and other settings: not machine noise."""
    policy = {"determinism": {"policy": {"seed": 0}}, "command": ["python", "train.py"]}
    same = made(tmp_path, "far1", **policy)
    other_seed = made(tmp_path, "far2", **{**policy, "determinism": {"policy": {"seed": 1}}})
    one_off = made(
        tmp_path, "far3", **{**policy, "command": ["python", "-c", "pass"], "project": "q"}
    )
    control = reprocheck.identity_of(made(tmp_path, "c1", **policy).record)
    kept, left_out = reprocheck.comparable([same, other_seed, one_off, same], control)
    assert [run.id for run in kept] == ["far1"]
    assert left_out == [
        "far2 left out: its determinism policy differs from this check's",
        "far3 left out: its project and command differ from this check's",
    ]


def test_repeats_that_end_alike_but_differ_elsewhere_give_no_number_to_weigh_by(
    tmp_path: Path,
) -> None:
    """Their 0% final difference is no measure of the noise: the runs do differ."""
    elsewhere = made(tmp_path, "c2", series=[[0, 1.1], [1, 0.5]])
    report = reprocheck.compare(
        [target("cpu", made(tmp_path, "c1"), elsewhere), varied(tmp_path, "threads=1", "v1", 0.55)]
    )
    assert report.summary.endswith(
        "; cannot tell whether the thread count changes results (threads=1): repeated runs "
        "differ by 0% in final loss, apart in loss on the way, first at step 0 (the gap is 9.09%)"
    )


def test_runs_apart_only_in_an_output_name_it(tmp_path: Path) -> None:
    """A stamp file written each run: the metrics are identical, the output is not."""
    stamped = [
        made(tmp_path, run_id, outputs={"files": {"checkpoints/stamp.txt": run_id * 16}})
        for run_id in ("c1", "c2")
    ]
    report = reprocheck.compare([target("cpu", *stamped)])
    assert report.summary == (
        "NOT reproducible on cpu (2 runs, 1 differs from the first; runs differ by 0% in final "
        "loss, apart in checkpoints/stamp.txt)"
    )


def test_repeats_that_recorded_nothing_to_compare_are_not_called_reproducible(
    tmp_path: Path,
) -> None:
    nothing = {"metrics": {"primary": None, "series": {}}}
    report = reprocheck.compare(
        [target("cpu", made(tmp_path, "r1", **nothing), made(tmp_path, "r2", **nothing))]
    )
    assert report.verdict == "not_compared"  # exit 2, as for a check that could not be made
    assert report.summary.startswith(
        "could not check reproducibility: nothing to compare in 1 of 1 comparisons "
        "(cpu: r2 vs r1): neither run recorded metrics or outputs; declare what the experiment "
        "produces in toolkit.yaml: experiment.outputs"
    )
    assert "reproducible on cpu" not in report.summary
    assert [row[3] for row in repro_rows(report)] == ["nothing to compare"]
    assert reprocheck.as_json(report)["verdict"] == "not_compared"
    from toolkit.report import repro_markdown

    assert repro_markdown(report).startswith("### ⚠️ repro-check: could not check")


def test_a_variation_with_nothing_to_compare_is_not_said_to_change_results_or_not(
    tmp_path: Path,
) -> None:
    nothing = {"metrics": {"primary": None, "series": {}}}
    varied_run = made(tmp_path, "v1", **nothing)
    report = reprocheck.compare(
        [
            target("cpu", made(tmp_path, "c1", **nothing)),
            Group("cpu threads=1", "variation", "cpu", Variation("threads", 1), (varied_run,)),
        ]
    )
    assert report.verdict == "not_compared"
    assert "thread count" not in report.summary


def test_native_runs_are_grouped_as_runs_and_diff_name_them(tmp_path: Path) -> None:
    made_for: list[tuple[str, str]] = []

    def run_one(name: str, variation: Variation | None, index: int) -> Run:
        made_for.append((name, variation.label if variation else f"#{index + 1}"))
        return made(tmp_path, f"r{len(made_for)}", native=True)

    groups = reprocheck.collect(["cpu"], 2, [Variation("threads", 1)], run_one, native=True)
    assert [g.label for g in groups] == ["cpu (native)", "cpu (native) threads=1"]
    assert made_for == [("cpu", "#1"), ("cpu", "#2"), ("cpu", "threads=1")]  # the target's name
    report = reprocheck.compare(groups)
    assert report.control == "cpu (native) (r1)"
    assert report.summary == (
        "reproducible on cpu (native) (2 runs, all identical); thread count does not change results"
    )
    assert [row[:2] for row in repro_rows(report)] == [
        ["run-to-run", "cpu (native)"],
        ["vs control", "cpu (native) threads=1"],
    ]


def test_json_gives_each_group_its_target_as_toolkit_yaml_names_it(tmp_path: Path) -> None:
    """`groups[].target` is "cpu" for runs made here and imported alike, native or not; the
    label says "cpu (native)", as the table does."""
    made_for = iter(range(100))

    def run_one(name: str, variation: Variation | None, index: int) -> Run:
        return made(tmp_path, f"r{next(made_for)}", native=True)

    groups = reprocheck.collect(["cpu"], 2, [Variation("threads", 1)], run_one, native=True)
    groups += reprocheck.imported_groups(
        [made(tmp_path, "vm1", native=True, host={"hostname": "vm"})]
    )
    report = reprocheck.compare(groups)
    assert [(g["label"], g["target"]) for g in reprocheck.as_json(report)["groups"]] == [
        ("cpu (native)", "cpu"),
        ("cpu (native) threads=1", "cpu"),
        ("cpu (native) on vm", "cpu"),
    ]
    assert [row[:2] for row in repro_rows(report)] == [
        ["run-to-run", "cpu (native)"],
        ["vs control", "cpu (native) threads=1"],
        ["vs control", "cpu (native) on vm"],
    ]


def test_a_divergence_beside_a_comparison_with_nothing_to_compare_exits_1(
    tmp_path: Path,
) -> None:
    """Found is stronger news than not looked at: the verdict is "diverged", and the summary
    leads with it, then names the comparison that had nothing to compare."""
    nothing = {"metrics": {"primary": None, "series": {}}}
    report = reprocheck.compare(
        [
            target("cpu", made(tmp_path, "c1"), made(tmp_path, "c2", series=[[0, 1.0], [1, 0.7]])),
            target("gpu", made(tmp_path, "g1", **nothing), made(tmp_path, "g2", **nothing)),
        ]
    )
    assert report.verdict == "diverged"  # exit 1
    assert reprocheck.as_json(report)["verdict"] == "diverged"
    assert report.summary.startswith(
        "NOT reproducible on cpu (2 runs, 1 differs from the first; runs differ by 28.6% in loss"
    )
    assert report.summary.endswith(
        "; nothing to compare in 1 of 3 comparisons (gpu: g2 vs g1): neither run recorded "
        "metrics or outputs; declare what the experiment produces in toolkit.yaml: "
        "experiment.outputs (files it writes) or experiment.metrics (a metrics file, or patterns "
        "read from its stdout); where they are declared, the command wrote none of them; "
        "then run it again"
    )
    assert "reproducible on gpu" not in report.summary
    # a run that failed still makes the check one that could not be made (exit 2)
    failed = reprocheck.compare(
        [
            target("cpu", made(tmp_path, "c1"), made(tmp_path, "c2", series=[[0, 1.0], [1, 0.7]])),
            target("gpu", made(tmp_path, "g1", status="failed")),
        ]
    )
    assert failed.verdict == "failed"


def test_help_paragraphs_are_left_for_the_terminal_to_wrap(tmp_path: Path) -> None:
    """`repro-check --help` kept the docstring's line breaks: "1 when any diverged, 2 when a" /
    "run failed" on a terminal of any width."""
    import itertools
    import os

    wide = dict(os.environ, COLUMNS="200", TERMINAL_WIDTH="200")
    for command, exit_2 in (
        (
            "repro-check",
            "Exit 2: the check could not be made (a run failed, or nothing to compare)",
        ),
        ("diff", "Exit 2: nothing to compare (neither run recorded metrics or outputs), or an"),
    ):
        shown = toolkit(command, "--help", cwd=tmp_path, env=wide).stdout
        prose = shown.split("╭")[0].split(" Usage:")[1].splitlines()[1:]
        text = [line.strip() for line in prose]
        # on a wide terminal every paragraph is one line: no two lines of text follow each other
        for line, following in itertools.pairwise(text):
            assert not (line and following), f"{command} --help breaks {line!r} / {following!r}"
        assert exit_2 in shown


def code(train_py: str) -> dict[str, object]:
    """A record's code: one commit, with train.py at the content `train_py` stands for."""
    return {
        "content_sha256": train_py * 8,
        "commit": "c0",
        "dirty": False,
        "files": {"train.py": train_py * 8},
    }


def versioned(
    tmp_path: Path, run_id: str, train_py: str, loss: float = 0.5, **extra: object
) -> Run:
    """A run of the code `train_py` stands for: loss 1.0, then `loss`."""
    return made(tmp_path, run_id, code=code(train_py), series=[[0, 1.0], [1, loss]], **extra)


def test_a_run_from_elsewhere_of_other_code_is_said_to_run_other_code_not_a_machine(
    tmp_path: Path,
) -> None:
    """A teammate changed train.py and exported the run: the gap is the change, not the vm."""
    here = target("cpu", versioned(tmp_path, "c1", "a"), versioned(tmp_path, "c2", "a"))
    mate = reprocheck.imported_groups(
        [versioned(tmp_path, "far", "b", 0.525, host={"hostname": "vm"})]
    )
    report = reprocheck.compare([here, *mate])
    assert report.summary == (
        "reproducible on cpu (2 runs, all identical); cpu on vm: 1 run; cpu on vm ran other code "
        "than cpu: differs by 4.76% in loss, first at step 1 (code differs: file train.py)"
    )
    assert report.verdict == "diverged"  # exit 1: the table's comparison diverged
    assert [row[6] for row in repro_rows(report)] == ["-", "code"]
    pairs = reprocheck.as_json(report)["pairs"]
    assert [(p["group"], p["ran_other"]) for p in pairs] == [("cpu", []), ("cpu on vm", ["code"])]
    # the same code, bitwise the same results: still said, with what differs
    same = reprocheck.imported_groups([versioned(tmp_path, "far", "b", host={"hostname": "vm"})])
    report = reprocheck.compare([here, *same])
    assert report.summary.endswith(
        "; cpu on vm ran other code than cpu, and matches it bitwise (code differs: file train.py)"
    )
    assert report.verdict == "identical"


def test_repeats_of_other_code_are_no_test_of_reproducibility(tmp_path: Path) -> None:
    """A folder of a teammate's runs before and after an edit: not "NOT reproducible on vm"."""
    here = target("cpu", versioned(tmp_path, "c1", "a"), versioned(tmp_path, "c2", "a"))
    mate = reprocheck.imported_groups(
        [
            versioned(tmp_path, "far1", "a", host={"hostname": "vm"}),
            versioned(tmp_path, "far2", "b", 0.525, host={"hostname": "vm"}),
        ]
    )
    report = reprocheck.compare([here, *mate])
    assert "NOT reproducible" not in report.summary
    assert report.summary == (
        "reproducible on cpu (2 runs, all identical); cpu on vm: its 2 runs ran other code than "
        "each other (code differs: file train.py), so they are no test of reproducibility: they "
        "differ by 4.76% in loss, first at step 1; cpu on vm matches cpu bitwise"
    )
    assert report.verdict == "diverged"  # their results do differ: exit 1, as the table says


def test_repeats_of_other_code_are_not_weighed_as_noise(tmp_path: Path) -> None:
    """The vm's two runs are 20% apart because of an edit: no measure of the vm's noise, so its
    4.76% gap to cpu is neither hidden in it nor named a cause."""
    mate = reprocheck.imported_groups(
        [
            versioned(tmp_path, "far1", "a", 0.525, host={"hostname": "vm"}),
            versioned(tmp_path, "far2", "b", 0.63, host={"hostname": "vm"}),
        ]
    )
    report = reprocheck.compare([target("cpu", versioned(tmp_path, "c1", "a")), *mate])
    assert report.summary.endswith(
        "; cannot tell whether cpu on vm differs from cpu beyond run-to-run noise: the repeated "
        "runs ran other code or data than each other, so run-to-run noise was not measured"
    )
    assert "NOT reproducible" not in report.summary


def test_one_run_of_three_of_other_code_is_said_apart_from_the_repeats(tmp_path: Path) -> None:
    mate = reprocheck.imported_groups(
        [
            versioned(tmp_path, "far1", "a", host={"hostname": "vm"}),
            versioned(tmp_path, "far2", "a", host={"hostname": "vm"}),
            versioned(tmp_path, "far3", "b", 0.525, host={"hostname": "vm"}),
        ]
    )
    report = reprocheck.compare([target("cpu", versioned(tmp_path, "c1", "a")), *mate])
    assert report.summary == (
        "cpu: 1 run; cpu on vm: 1 of its 3 runs ran other code than its first (code differs: "
        "file train.py), so it is no test of reproducibility: it differs by 4.76% in loss, first "
        "at step 1; reproducible on cpu on vm (2 runs of the same code, all identical); "
        "cpu on vm matches cpu bitwise"
    )


def test_runs_that_read_other_data_are_no_test_of_reproducibility(tmp_path: Path) -> None:
    """An experiment that rewrites its own data folder: the second run read other data."""
    first = made(tmp_path, "c1", data={"digest": "d1", "files": {"data/train.csv": "1" * 64}})
    second = made(
        tmp_path,
        "c2",
        data={"digest": "d2", "files": {"data/train.csv": "2" * 64}},
        series=[[0, 1.0], [1, 0.6]],
    )
    report = reprocheck.compare([target("cpu", first, second)])
    assert report.summary == (
        "cpu: its 2 runs ran other data than each other (data differs: data file "
        "data/train.csv), so they are no test of reproducibility: they differ by 16.7% in loss, "
        "first at step 1"
    )


def test_a_variation_of_other_code_is_not_said_to_change_results_or_not(tmp_path: Path) -> None:
    """train.py edited while the check ran: the variation is two changes at once."""
    here = target("cpu", versioned(tmp_path, "c1", "a"), versioned(tmp_path, "c2", "a"))
    threads = Group(
        "cpu threads=1",
        "variation",
        "cpu",
        Variation("threads", 1),
        (versioned(tmp_path, "v1", "b", 0.55),),
    )
    seed = Group(
        "cpu seed=1", "variation", "cpu", Variation("seed", 1), (versioned(tmp_path, "v2", "b"),)
    )
    report = reprocheck.compare([here, threads, seed])
    assert report.summary == (
        "reproducible on cpu (2 runs, all identical); cpu threads=1 ran other code than cpu: "
        "differs by 9.09% in loss, first at step 1 (code differs: file train.py); cpu seed=1 ran "
        "other code than cpu, and matches it bitwise (code differs: file train.py)"
    )
