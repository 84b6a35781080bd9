"""`toolkit diff` on hand-made records: NaN metrics, settings in words, clean --json/--markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tests.support import toolkit
from toolkit.diff import InputChange, Run, attribute, diff_runs
from toolkit.report import diff_text


def record(run_id: str, losses: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "schema": "toolkit.run/1",
        "id": run_id,
        "project": "p",
        "target": "cpu",
        "status": "succeeded",
        "exit_code": 0,
        "command": ["python", "train.py"],
        "native": True,
        "determinism": {"policy": {"seed": 0}, "applied": []},
        "metrics": {
            "primary": "loss",
            "series": {"loss": [[step, value] for step, value in enumerate(losses)]},
        },
        "outputs": {"files": {}},
        **extra,
    }


def folder(tmp_path: Path, doc: dict[str, Any]) -> Path:
    run = tmp_path / doc["id"]
    run.mkdir()
    (run / "record.json").write_text(json.dumps(doc))  # NaN as bare NaN, as older records hold
    return run


def test_nan_against_a_number_is_a_difference_named_with_its_values(tmp_path: Path) -> None:
    a = Run(record("a", [1.0, math.nan, math.nan]), tmp_path / "a")
    b = Run(record("b", [1.0, 0.5, math.nan]), tmp_path / "b")
    d = diff_runs(a, b)
    assert d.verdict == "diverged"
    assert d.first_divergence == ("loss", 1)
    assert d.warnings == (
        "loss is nan in A but 0.5 in B at step 1 (NaN in one run only at 1 step); "
        "max abs/rel count only steps where both values are finite",
    )


def test_runs_that_both_reach_the_same_nan_are_identical(tmp_path: Path) -> None:
    a = Run(record("a", [1.0, math.nan]), tmp_path / "a")
    b = Run(record("b", [1.0, -math.nan]), tmp_path / "b")  # other bits, same NaN
    d = diff_runs(a, b)
    assert d.verdict == "identical"
    assert d.warnings == ()


def test_settings_are_shown_in_words_not_internal_values() -> None:
    seeded = {"name": "torch.manual_seed", "value": 0, "status": "applied"}
    threads = {"name": "torch.set_num_threads", "value": 2, "status": "applied"}
    a = record(
        "a", [], determinism={"policy": {}, "applied": [seeded, threads]}, toolkit_version="0.2"
    )
    b = record("b", [], determinism={"policy": {}, "applied": [seeded]}, command=None)
    assert attribute(a, b) == [
        InputChange("code", "command", '["python", "train.py"]', "none"),
        # another toolkit, which may not have recorded it
        InputChange("settings", "torch.set_num_threads", "2 (applied)", "not recorded"),
    ]
    failed = {**threads, "status": "failed"}
    portable = {"policy": {"cpu": "portable"}, "applied": [seeded]}
    assert attribute(
        record("c", [], determinism={"policy": {"cpu": "fixed"}, "applied": [seeded, failed]}),
        record("d", [], determinism=portable),
    ) == [
        InputChange("settings", "cpu", "fixed", "portable"),
        InputChange("settings", "torch.set_num_threads", "2 (failed)", "not set"),  # policy's
    ]


def test_json_and_html_together_keep_stdout_json(tmp_path: Path) -> None:
    a = folder(tmp_path, record("a", [1.0, 0.5]))
    b = folder(tmp_path, record("b", [1.0, 0.25]))
    page = tmp_path / "report.html"
    result = toolkit("diff", str(a), str(b), "--json", "--html", str(page), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["verdict"] == "diverged"
    assert f"HTML report: {page}" in result.stderr
    assert page.is_file()
    markdown = toolkit("diff", str(a), str(b), "--markdown", "--html", str(page), cwd=tmp_path)
    assert "HTML report" not in markdown.stdout and "HTML report" in markdown.stderr


def test_diff_text_names_the_nan(tmp_path: Path) -> None:
    a = folder(tmp_path, record("a", [1.0, math.nan]))
    b = folder(tmp_path, record("b", [1.0, 0.5]))
    result = toolkit("diff", str(a), str(b), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "warning: loss is nan in A but 0.5 in B at step 1" in result.stdout


def test_a_run_that_cannot_be_found_is_an_error_exit_2(tmp_path: Path) -> None:
    a = folder(tmp_path, record("a", [1.0]))
    result = toolkit("diff", str(a), "nope", cwd=tmp_path)
    assert result.returncode == 2  # 1 would read as "the runs differ"
    assert result.stderr.startswith("error: no run 'nope'")
    assert "Traceback" not in result.stderr


def test_diff_text_says_a_and_b_as_the_headline_does(tmp_path: Path) -> None:
    a = folder(tmp_path, record("a", [1.0, math.nan, 2.0, 3.0]))
    b = folder(tmp_path, record("b", [1.0, 0.5], outputs={"files": {"model.txt": "1"}}))
    result = toolkit("diff", str(a), str(b), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("diverged: a (cpu native) vs b (cpu native)")
    metrics = next(line for line in result.stdout.splitlines() if line.startswith("  loss"))
    assert metrics.endswith(
        "max abs 0, max rel 0%, 2 steps only in A; "
        "nan in A vs 0.5 in B at step 1 (max abs/rel over finite values only)"
    )
    assert "  model.txt                only in B" in result.stdout.splitlines()


def test_the_python_a_run_ran_on_is_part_of_its_environment() -> None:
    changes = attribute(record("a", [1.0], python="3.11.2"), record("b", [1.0], python="3.12.1"))
    assert InputChange("environment", "python", "3.11.2", "3.12.1") in changes
    older = record("c", [1.0])  # a record from before toolkit recorded it
    assert not [
        c for c in attribute(older, record("b", [1.0], python="3.12.1")) if c.field == "python"
    ]


def test_the_network_a_run_had_is_part_of_its_environment() -> None:
    changes = attribute(record("a", [1.0], network="none"), record("b", [1.0], network="bridge"))
    assert InputChange("environment", "network", "none", "bridge") in changes
    older = record("c", [1.0])  # a record from before toolkit recorded it
    assert not [
        c for c in attribute(older, record("b", [1.0], network="bridge")) if c.field == "network"
    ]


def test_diff_json_is_strict_json_with_nan_spelt_as_records_spell_it(tmp_path: Path) -> None:
    from toolkit.report import diff_json

    a = Run(record("a", [1.0, math.nan]), tmp_path / "a")
    b = Run(record("b", [1.0, 0.5]), tmp_path / "b")
    text = json.dumps(diff_json(diff_runs(a, b)), allow_nan=False)  # raises on a bare NaN
    assert '"NaN"' in text and '"nan"' not in text


def test_a_data_file_in_one_run_only_is_said_to_be_absent_from_the_other() -> None:
    files = {"d/train.csv": "a" * 64, "d/val.csv": "b" * 64}
    a = record("a", [1.0], data={"digest": "x", "files": files})
    b = record(
        "b",
        [1.0],
        data={"digest": "y", "files": {**files, "d/val.csv": "c" * 64, "d/extra.csv": "e" * 64}},
    )
    assert [c for c in attribute(a, b) if c.category == "data"] == [
        InputChange("data", "data file d/val.csv", "b" * 12, "c" * 12),  # an edit comes first
        InputChange("data", "data file d/extra.csv", "absent", "e" * 12),
    ]
    many = record("c", [1.0], data={"digest": "z", "files": {f"f{i}": "0" * 64 for i in range(7)}})
    data = [c for c in attribute(a, many) if c.category == "data"]
    assert len(data) == 6 and data[-1] == InputChange(
        "data", "data files", "9 differ", "5 shown above"
    )


def test_a_run_with_more_steps_is_measured_by_its_own_final_value(tmp_path: Path) -> None:
    """--epochs 4 against --epochs 3: the common steps agree, the final values do not."""
    a, b = (
        Run(record("a", [1.0, 0.5, 0.25]), tmp_path / "a"),
        Run(record("b", [1.0, 0.5]), tmp_path / "b"),
    )
    d = diff_runs(a, b)
    assert d.verdict == "diverged"
    assert d.headline == 0.5  # 0.25 (A's step 2) against 0.5 (B's step 1), not 0% at step 1
    assert d.first_divergence == ("loss", 2)  # the first step one run has and the other lacks
    text = toolkit(
        "diff", str(folder(tmp_path, a.record)), str(folder(tmp_path, b.record)), cwd=tmp_path
    )
    assert "loss differs by 50%, first at step 2 (loss)" in text.stdout
    assert "first differs at step 2" in text.stdout and "1 step only in A" in text.stdout


def test_a_run_compared_with_itself_is_said_to_be_so(tmp_path: Path) -> None:
    run = Run(record("a", [1.0, 0.5]), tmp_path / "a")
    d = diff_runs(run, run)
    assert d.verdict == "identical"
    assert d.warnings == ("a on both sides: a run compared with itself is always identical",)


def test_a_record_saved_under_another_name_is_read_as_it_is(tmp_path: Path) -> None:
    a = folder(tmp_path, record("a", [1.0, 0.5]))
    saved = tmp_path / "a-saved.json"
    saved.write_text(json.dumps(record("saved", [1.0, 0.25])))  # not a's record.json beside it
    result = toolkit("diff", str(a), str(saved), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("diverged: a (cpu native) vs saved (cpu native)")


def test_the_gpus_and_cpu_kernels_torch_used_are_hardware() -> None:
    h200 = {"name": "NVIDIA H200", "capability": "9.0", "sm_count": 132}
    a = record("a", [1.0], accelerator={"devices": [h200], "cpu_capability": "AVX512"})
    b = record("b", [1.0], accelerator={"devices": [], "cpu_capability": "AVX2"})
    assert [c for c in attribute(a, b) if c.category == "hardware"] == [
        InputChange("hardware", "torch devices", "NVIDIA H200 (9.0)", "none"),
        InputChange("hardware", "torch cpu capability", "AVX512", "AVX2"),
    ]


def test_a_setting_the_program_changed_itself_is_an_input() -> None:
    """Both runs applied the policy; one program then set 2 threads, the other 4."""

    def overriding(run_id: str, threads: int) -> dict[str, Any]:
        found = {"name": "torch.set_num_threads", "policy": 1, "found": threads, "pid": 1}
        return record(
            run_id, [1.0], determinism={"policy": {}, "applied": [], "overridden": [found]}
        )

    changes = attribute(overriding("a", 2), overriding("b", 4))
    assert changes == [
        InputChange("settings", "torch.set_num_threads, set by the program", "2", "4")
    ]
    plain = attribute(record("c", [1.0]), overriding("b", 4))
    assert (
        InputChange(
            "settings", "torch.set_num_threads, set by the program", "as the policy set it", "4"
        )
        in plain
    )


def test_code_is_compared_by_content_and_an_edit_is_named_by_its_file() -> None:
    def code(commit: str, content: str, **files: str) -> dict[str, Any]:
        return {"commit": commit, "dirty": False, "content_sha256": content, "files": files}

    before = record("a", [1.0], code=code("c1", "x", **{"train.py": "aaa", "model.py": "bbb"}))
    reverted = record("b", [1.0], code=code("c3", "x", **{"train.py": "aaa", "model.py": "bbb"}))
    assert attribute(before, reverted) == []  # another commit, the same code

    edited = record("c", [1.0], code=code("c2", "y", **{"train.py": "ccc", "model.py": "bbb"}))
    assert attribute(before, edited) == [
        InputChange("code", "git commit", "c1", "c2"),
        InputChange("code", "file train.py", "aaa", "ccc"),
    ]
    dirty = {
        **edited["code"],
        "dirty": True,
        "diff_sha256": "e901be0baced21dc",
        "patch": "code.diff",
    }
    assert attribute(before, {**edited, "code": dirty})[-1] == InputChange(
        "code", "uncommitted changes", "none", "code.diff in its run folder (e901be0baced)"
    )
    # above FILES_KEPT code files a record keeps only the content hash
    big_a = record("d", [1.0], code={**code("c1", "x"), "files": None})
    big_b = record("e", [1.0], code={**code("c1", "y"), "files": None})
    assert InputChange("code", "content", "x", "y") in attribute(big_a, big_b)
    listed = record("d2", [1.0], code=code("c1", "z", **{"train.py": "aaa"}))
    assert [c.field for c in attribute(listed, big_b) if c.category == "code"] == ["content"]

    older = {"commit": "c1", "dirty": True, "diff_sha256": "d1"}  # before content hashes
    assert attribute(record("f", [1.0], code=older), record("g", [1.0], code=older)) == []
    assert InputChange("code", "uncommitted changes", "d1", "d2") in attribute(
        record("f", [1.0], code=older), record("g", [1.0], code={**older, "diff_sha256": "d2"})
    )


def test_an_edited_data_file_is_named_before_many_new_ones() -> None:
    files = {"d/train.csv": "a" * 64}
    added = {f"d/new{i}.csv": "n" * 64 for i in range(6)}
    a = record("a", [1.0], data={"digest": "x", "files": files})
    b = record("b", [1.0], data={"digest": "y", "files": {"d/train.csv": "b" * 64, **added}})
    data = [c for c in attribute(a, b) if c.category == "data"]
    assert data[0] == InputChange("data", "data file d/train.csv", "a" * 12, "b" * 12)


def test_a_run_that_ended_early_has_not_changed_what_it_never_reached() -> None:
    """Interrupted while torch was imported: the settings and devices torch would have had
    are not a change of inputs; a setting both runs reached and that differs still is."""
    applied = [
        {"name": "torch._inductor.config.deterministic", "value": True, "status": "applied"},
        {"name": "numpy", "value": None, "status": "applied"},
        {"name": "torch.set_num_threads", "value": 2, "status": "applied"},
    ]
    accelerator = {"cpu_capability": "AVX512", "devices": []}
    done = record(
        "a", [1.0], determinism={"policy": {}, "applied": applied}, accelerator=accelerator
    )
    stopped = record(
        "b",
        [],
        status="interrupted",
        determinism={
            "policy": {},
            "applied": [
                {"name": "numpy", "value": None, "status": "not_applicable"},
                {"name": "torch.set_num_threads", "value": 4, "status": "applied"},
            ],
        },
    )
    assert attribute(done, stopped) == [
        InputChange("settings", "torch.set_num_threads", "2 (applied)", "4 (applied)")
    ]
    # "not recorded": of another toolkit; only a run that ended early is excused it
    older = {**stopped, "toolkit_version": "0.1"}
    assert [c.field for c in attribute(done, older)] == ["torch.set_num_threads"]
    assert [c.field for c in attribute(done, {**older, "status": "succeeded"})] == [
        "torch._inductor.config.deterministic",
        "torch.set_num_threads",
    ]


def test_cpu_portable_lowers_the_cpu_capability_on_the_same_machine_it_is_no_hardware_change() -> (
    None
):
    fixed = record(
        "a",
        [1.0],
        determinism={"policy": {"cpu": "fixed"}, "applied": []},
        accelerator={"cpu_capability": "AVX512"},
    )
    portable = record(
        "b",
        [1.0],
        determinism={"policy": {"cpu": "portable"}, "applied": []},
        accelerator={"cpu_capability": "DEFAULT"},
    )
    assert attribute(fixed, portable) == [InputChange("settings", "cpu", "fixed", "portable")]
    elsewhere = {**portable, "determinism": {"policy": {"cpu": "fixed"}, "applied": []}}
    assert attribute(fixed, elsewhere) == [
        InputChange("hardware", "torch cpu capability", "AVX512", "DEFAULT")
    ]


def test_packages_the_runs_imported_come_first_and_many_in_one_run_only_are_one_line() -> None:
    tools = {f"tool{i}": "1.0" for i in range(8)}
    a = record(
        "a",
        [1.0],
        packages={"torch": "2.13.0", "numpy": "2.4.6", "Jinja2": "3.1"},
        libraries={"torch": "2.13.0", "numpy": "2.4.6"},
    )
    b = record(
        "b",
        [1.0],
        packages={"torch": "2.12.0", "numpy": "2.4.6", "Jinja2": "3.2", **tools},
        libraries={"torch": "2.12.0", "numpy": "2.4.6"},
    )
    assert [c for c in attribute(a, b) if c.category == "environment"] == [
        InputChange("environment", "package torch", "2.13.0", "2.12.0"),
        InputChange("environment", "package Jinja2", "3.1", "3.2"),
        InputChange(
            "environment",
            "packages only in B",
            "none",
            "8: tool0 1.0, tool1 1.0, tool2 1.0, tool3 1.0, tool4 1.0, tool5 1.0, ...",
        ),
    ]


def test_a_checkpoint_whose_architecture_changed_counts_every_tensor(tmp_path: Path) -> None:
    import numpy as np

    runs = []
    for name, arrays in (
        ("a", {"conv": np.ones((2, 5)), "bias": np.ones(2), "w": np.ones(3)}),
        ("b", {"conv": np.ones((2, 3)), "w": np.full(3, 2.0)}),
    ):
        doc = record(name, [1.0], outputs={"files": {"model.npz": name * 64}})
        run = folder(tmp_path, doc)
        (run / "outputs").mkdir()
        np.savez(run / "outputs" / "model.npz", **arrays)
        runs.append(run)
    said = toolkit("diff", str(runs[0]), str(runs[1]), cwd=tmp_path).stdout
    assert "3/3 tensors differ (1 dtype or shape changed, 1 only in A)" in said, said
    assert "    conv                   shape differs: (2, 5) vs (2, 3)\n" in said
    assert "    bias                   only in A\n" in said  # no "0.0% differ" for it
    assert "    w                      100.0% differ" in said


def test_the_headline_says_an_output_made_the_verdict_when_the_metrics_did_not(
    tmp_path: Path,
) -> None:
    import numpy as np

    runs = []
    for name, loss, weight in (("a", 0.5, 1.0), ("b", 0.50001, 2.0)):
        doc = record(name, [1.0, loss], outputs={"files": {"model.npz": name * 64}})
        run = folder(tmp_path, doc)
        (run / "outputs").mkdir()
        np.savez(run / "outputs" / "model.npz", w=np.full(3, weight))
        runs.append(run)
    result = toolkit("diff", str(runs[0]), str(runs[1]), "--rtol", "0.01", cwd=tmp_path)
    first = result.stdout.splitlines()[0]
    assert result.returncode == 1
    assert first.endswith("; beyond tolerance: model.npz (metrics within tolerance)"), first


def test_a_metric_one_run_never_logged_is_said_so_without_numbers(tmp_path: Path) -> None:
    a = folder(tmp_path, record("a", [1.0, 0.5, 0.25]))
    b = folder(tmp_path, {**record("b", []), "metrics": {"primary": "loss", "series": {}}})
    said = toolkit("diff", str(a), str(b), cwd=tmp_path).stdout
    assert "  loss             only in A (B logged no loss; 3 steps)\n" in said, said
    assert "max abs 0" not in said
    markdown = toolkit("diff", str(a), str(b), "--markdown", cwd=tmp_path).stdout
    assert "| loss | only in A (B logged no loss; 3 steps) | - | - | - |" in markdown


def test_the_headline_says_a_run_failed_after_its_last_step(tmp_path: Path) -> None:
    """B logged every step, then failed before saving its checkpoint: the headline says so, not
    only that the checkpoint differs."""
    a = folder(tmp_path, record("a", [1.0, 0.5], outputs={"files": {"model.npz": "a" * 64}}))
    b = folder(tmp_path, record("b", [1.0, 0.5], status="failed", exit_code=1))
    first = toolkit("diff", str(a), str(b), cwd=tmp_path).stdout.splitlines()[0]
    assert "; B failed, exit 1" in first, first


def quiet(run_id: str, **extra: Any) -> dict[str, Any]:
    """A run of `bash -c 'echo $RANDOM'`: no metrics, no outputs declared."""
    return record(run_id, [], metrics={"primary": None, "series": {}}, **extra)


def test_runs_that_recorded_neither_metrics_nor_outputs_are_not_called_identical(
    tmp_path: Path,
) -> None:
    """Two runs that printed different numbers and recorded nothing else were "identical"."""
    a = folder(tmp_path, quiet("a"))
    b = folder(tmp_path, quiet("b"))
    result = toolkit("diff", str(a), str(b), cwd=tmp_path)
    assert result.returncode == 2, result.stderr  # cannot tell: neither 0 (same) nor 1 (differ)
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "nothing to compare: a (cpu native) vs b (cpu native); "
        "neither run recorded metrics or outputs"
    )
    assert lines[1].startswith("hint: declare what the experiment produces in toolkit.yaml: ")
    assert "experiment.outputs" in lines[1] and "experiment.metrics" in lines[1]
    assert "  none: neither run logged a metric" in lines
    assert "  none: neither run recorded an output" in lines
    assert "identical" not in result.stdout
    doc = json.loads(toolkit("diff", str(a), str(b), "--json", cwd=tmp_path).stdout)
    assert doc["verdict"] == "not_compared"
    assert doc["nothing_compared"] == "neither run recorded metrics or outputs"
    markdown = toolkit("diff", str(a), str(b), "--markdown", cwd=tmp_path)
    assert markdown.returncode == 2
    assert markdown.stdout.startswith("### ⚠️ nothing to compare: a (cpu native) vs b")
    assert "> hint: declare what the experiment produces" in markdown.stdout
    page = tmp_path / "report.html"
    toolkit("diff", str(a), str(b), "--html", str(page), cwd=tmp_path)
    assert "<h1>nothing to compare: a (cpu native) vs b" in page.read_text()
    assert "hint: declare what the experiment produces" in page.read_text()


def test_runs_whose_outputs_were_skipped_and_that_logged_no_metric_name_what_each_lacks(
    tmp_path: Path,
) -> None:
    skipped = quiet("b", incomplete=["outputs"], outputs=None)
    d = diff_runs(Run(quiet("a"), tmp_path / "a"), Run(skipped, tmp_path / "b"))
    assert d.verdict == "not_compared"
    assert d.nothing_compared == (
        "neither run recorded metrics or outputs "
        "(A: no metrics, no outputs; B: no metrics, outputs skipped with Ctrl-C)"
    )
    assert d.nothing_compared_hint is not None
    assert d.nothing_compared_hint.startswith("let a run finish writing its record")
    # outputs of one run beside the other's skipped ones: nothing both have either
    written = quiet("a", outputs={"files": {"model.pt": "f" * 64}})
    d = diff_runs(Run(written, tmp_path / "a"), Run(skipped, tmp_path / "b"))
    assert d.verdict == "not_compared"
    assert d.nothing_compared == (
        "no metrics, and no outputs that both runs recorded "
        "(A: no metrics, 1 output file; B: no metrics, outputs skipped with Ctrl-C)"
    )
    text = diff_text(d)
    assert "  not compared: B skipped hashing outputs (Ctrl-C as the record was written)" in text


def test_runs_with_only_outputs_or_only_metrics_are_still_compared(tmp_path: Path) -> None:
    same = {"files": {"out.txt": "1" * 64}}
    d = diff_runs(
        Run(quiet("a", outputs=same), tmp_path / "a"), Run(quiet("b", outputs=same), tmp_path / "b")
    )
    assert d.verdict == "identical" and d.nothing_compared is None
    d = diff_runs(Run(record("a", [1.0]), tmp_path / "a"), Run(record("b", [1.0]), tmp_path / "b"))
    assert d.verdict == "identical" and d.nothing_compared is None


def test_runs_without_a_policy_are_said_to_differ_by_the_libraries_defaults(
    tmp_path: Path,
) -> None:
    """Two `toolkit run --no-policy` runs that part: no policy to have missed randomness."""
    unpolicied = {"policy": None, "environment": {"TOOLKIT_POLICY": "null"}, "applied": []}
    a = folder(tmp_path, record("a", [1.0, 0.5], determinism=unpolicied))
    b = folder(tmp_path, record("b", [1.0, 0.25], determinism=unpolicied))
    result = toolkit("diff", str(a), str(b), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    at = lines.index("  all recorded inputs are the same")
    assert lines[at + 1] == (
        "  (the same inputs, another result: both runs ran with --no-policy, on the libraries' "
        "defaults (generators unseeded, nondeterministic kernels allowed), where runs are "
        "expected to differ)"
    )
    assert "randomness the policy does not control" not in result.stdout
    markdown = toolkit("diff", str(a), str(b), "--markdown", cwd=tmp_path).stdout
    assert "> the same inputs, another result: both runs ran with --no-policy" in markdown
    doc = json.loads(toolkit("diff", str(a), str(b), "--json", cwd=tmp_path).stdout)
    assert doc["no_policy"] == ["A", "B"]


def untouched(run_id: str) -> dict[str, Any]:
    """`python -c "print(1)"` under the policy: no torch, numpy or random imported."""
    applied = [{"name": "env PYTHONHASHSEED", "value": "0", "status": "applied"}] + [
        {"name": library, "value": None, "status": "not_applicable"}
        for library in ("random", "numpy", "torch")
    ]
    policy = {"seed": 0, "threads": 2, "cpu": "fixed"}
    return record(run_id, [1.0], determinism={"policy": policy, "applied": applied})


def imported(run_id: str, threads: int = 2, capability: str = "AVX512") -> dict[str, Any]:
    """`python -c "import torch"` under the same policy: its settings applied, its CPU read."""
    doc = untouched(run_id)
    doc["determinism"]["applied"] = [
        doc["determinism"]["applied"][0],
        {"name": "random.seed", "value": 0, "status": "applied"},
        {"name": "numpy.random.seed", "value": 0, "status": "applied"},
        {"name": "torch.set_num_threads", "value": threads, "status": "applied"},
    ]
    doc["accelerator"] = {"cpu_capability": capability, "devices": []}
    return doc


def test_what_a_run_never_imported_is_no_change_of_hardware_or_settings() -> None:
    """One run never imported torch or numpy: their settings and torch's CPU kernels are
    values it never reached, not inputs that differ; the same machine and policy."""
    assert attribute(untouched("a"), imported("b")) == []
    assert attribute(imported("b"), untouched("a")) == []
    # both imported torch: what differs is a difference
    assert attribute(imported("b"), imported("c", threads=4, capability="AVX2")) == [
        InputChange("hardware", "torch cpu capability", "AVX512", "AVX2"),
        InputChange("settings", "torch.set_num_threads", "2 (applied)", "4 (applied)"),
    ]


def test_a_metric_of_one_step_reads_1_step(tmp_path: Path) -> None:
    d = diff_runs(Run(record("a", [1.0]), tmp_path / "a"), Run(record("b", [1.0]), tmp_path / "b"))
    assert "  loss             identical over 1 step" in diff_text(d)
    d = diff_runs(
        Run(record("a", [1.0, 0.5]), tmp_path / "a"), Run(record("b", [1.0, 0.5]), tmp_path / "b")
    )
    assert "  loss             identical over 2 steps" in diff_text(d)


def test_another_declaration_of_outputs_or_metrics_is_a_setting_not_randomness(
    tmp_path: Path,
) -> None:
    """toolkit.yaml's outputs changed between two runs: the outputs differed and diff blamed
    "randomness the policy does not control"."""
    a = record("a", [1.0], outputs={"files": {"out/r.txt": "1" * 64}, "declared": ["out/"]})
    b = record("b", [1.0], outputs={"files": {}, "declared": ["outputs/"]})
    a["metrics"].update(file="m.jsonl", patterns={})
    b["metrics"].update(file="metrics.jsonl", patterns={"loss": r"loss=(\S+)"})
    assert attribute(a, b) == [
        InputChange("settings", "declared outputs", "out/", "outputs/"),
        InputChange("settings", "metrics file", "m.jsonl", "metrics.jsonl"),
        InputChange("settings", "metrics patterns", "none", r"loss: loss=(\S+)"),
    ]
    text = diff_text(diff_runs(Run(a, tmp_path / "a"), Run(b, tmp_path / "b")))
    assert "randomness the policy does not control" not in text
    old = record("c", [1.0])  # an older toolkit's record declares nothing: not compared
    assert attribute(old, b) == []
    a["metrics"].update(file=None, patterns={"loss": r"loss=(\S+)"})  # no metrics file
    a["outputs"]["declared"] = ["outputs/", "extra/"]
    b["outputs"]["declared"] = ["extra/", "outputs/"]  # the same, in another order
    assert attribute(a, b) == [InputChange("settings", "metrics file", "none", "metrics.jsonl")]


def test_declared_outputs_spelt_another_way_are_the_same() -> None:
    """`checkpoints/, extra/` and `extra, ./checkpoints/` name the same folders: no change of
    settings; where they do differ, each run's paths are shown as it declared them."""
    a = record("a", [1.0], outputs={"files": {}, "declared": ["checkpoints/", "extra/"]})
    b = record("b", [1.0], outputs={"files": {}, "declared": ["extra", "./checkpoints/"]})
    assert attribute(a, b) == []
    b["outputs"]["declared"] = ["./checkpoints//", "extra/", "extra"]  # one folder twice
    assert attribute(a, b) == []
    b["outputs"]["declared"] = ["./checkpoints/", "other"]
    assert attribute(a, b) == [
        InputChange("settings", "declared outputs", "checkpoints/, extra/", "./checkpoints/, other")
    ]
