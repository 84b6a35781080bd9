"""Metric series: what is read, what is left out and said so, a primary metric never logged."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

from toolkit.config import EXAMPLE_PATTERN
from toolkit.metrics import (
    Skipped,
    final,
    line_step,
    merge,
    missing_primary,
    parse_json_lines,
    parse_stdout,
    read_file,
    read_log,
    read_run_files,
    run_warnings,
)


def test_lines_that_are_not_json_are_counted() -> None:
    parsed = parse_json_lines(
        ['{"step": 0, "loss": 1.0}', "loss 0.9", "", '{"step": 2, "loss": 0.8}', "[1, 2]", "{torn"]
    )
    assert parsed.series == {"loss": [(0, 1.0), (2, 0.8)]}
    assert parsed.skipped == (Skipped("not JSON", 2, 2), Skipped("not a JSON object", 1, 5))
    assert parsed.skipped[0].describe("metrics.jsonl") == (
        "metrics.jsonl: 2 lines skipped (not JSON; the first is line 2)"
    )
    assert parsed.skipped[1].describe("metrics.jsonl") == (
        "metrics.jsonl: 1 line skipped (not a JSON object; line 5)"
    )


def test_numbers_written_as_strings_are_counted_other_strings_are_not() -> None:
    parsed = parse_json_lines(
        [
            '{"step": 0, "loss": "1.0", "phase": "train"}',
            '{"step": 1, "loss": 0.9, "acc": "0.5"}',
            '{"step": 2, "loss": 0.8, "phase": "eval"}',
        ]
    )
    assert parsed.series == {"loss": [(1, 0.9), (2, 0.8)]}
    assert parsed.skipped == (Skipped("numbers written as strings", 2, 1),)
    assert (
        parsed.skipped[0]
        .describe("metrics.jsonl")
        .startswith(
            "metrics.jsonl: 2 lines with numbers written as strings, and those values left out "
            "(the first is line 1)"
        )
    )


def test_values_that_are_not_an_object_are_skipped_not_a_crash() -> None:
    parsed = parse_json_lines(['{"step": 0, "values": [1, 2]}', '{"values": {"loss": 1}}'])
    assert parsed.series == {"loss": [(0, 1.0)]}
    assert parsed.skipped == (Skipped("'values' is not an object", 1, 1),)


def test_non_finite_values_are_read_bare_or_as_a_record_writes_them() -> None:
    parsed = parse_json_lines(
        ['{"loss": NaN}', '{"loss": "NaN"}', '{"loss": "Infinity"}', '{"loss": "-Infinity"}']
    )
    values = [v for _, v in parsed.series["loss"]]
    assert math.isnan(values[0]) and math.isnan(values[1])
    assert values[2:] == [math.inf, -math.inf]
    assert parsed.skipped == ()


def test_a_json_list_that_does_not_parse_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('[\n{"loss": 1.0},\n{"loss": 0.5\n]\n')
    parsed = read_file(path)
    assert parsed.series == {}
    assert parsed.skipped[0].reason.startswith("not a JSON list")
    assert parsed.skipped[0].first_line == 4


def test_a_misspelt_primary_metric_is_named_with_what_was_seen() -> None:
    assert missing_primary("los", ["loss", "acc"]) == (
        "primary metric 'los' was not found; metrics seen: acc, loss; "
        "did you mean 'loss'? (experiment.metrics.primary)"
    )
    assert missing_primary("f1", ["loss", "acc"]) == (
        "primary metric 'f1' was not found; metrics seen: acc, loss"
    )
    assert "no metrics were read" in str(missing_primary("loss", []))
    assert missing_primary("loss", ["loss"]) is None
    assert missing_primary(None, ["loss"]) is None


def test_run_warnings_read_the_run_folder_and_its_record(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "log.jsonl").write_text(
        '{"step": 0, "loss": 1.0}\nnot json\n{"step": 1, "loss": "0.5"}\n'
    )
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 0, "values": {"acc": 0.1}}) + "\n")
    recorded = {
        "primary": "los",
        "file": "log.jsonl",
        "series": {"loss": [[0, 1.0]], "acc": [[0, 0.1]]},
    }
    files = read_run_files(tmp_path, recorded["file"])
    assert run_warnings(files, recorded) == (
        "outputs/log.jsonl: 1 line skipped (not JSON; line 2)",
        "outputs/log.jsonl: 1 line with numbers written as strings, and those values left out "
        "(line 3); "
        'write numbers without quotes, e.g. {"loss": 0.5}',
        "primary metric 'los' was not found; metrics seen: acc, loss; "
        "did you mean 'loss'? (experiment.metrics.primary)",
    )


def test_a_clean_run_has_no_metric_warnings(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "values": {"loss": 0.5}}\n')
    recorded = {"primary": "loss", "file": None, "series": {"loss": [[0, 0.5]]}}
    files = read_run_files(tmp_path, recorded["file"])
    assert run_warnings(files, recorded) == ()


def test_stdout_patterns_take_their_steps_from_a_step_pattern() -> None:
    printed = [
        "step 0: loss=1.5",
        "eval acc=0.5",  # printed after step 0's line: still step 0
        "step 10: loss=1e-3",
        "step 20: loss=0.0005 acc=0.75",
    ]
    patterns = (
        ("step", r"step (\d+)"),
        ("loss", r"loss=([-+0-9.eE]+)"),
        ("acc", r"acc=([-+0-9.eE]+)"),
        ("epoch", r"epoch (\d+)"),
    )
    assert parse_stdout(printed, patterns).series == {
        "loss": [(0, 1.5), (10, 0.001), (20, 0.0005)],
        "acc": [(0, 0.5), (20, 0.75)],
    }
    # with no step pattern, each metric's steps count its own matches
    assert parse_stdout(printed, patterns[1:3]).series == {
        "loss": [(0, 1.5), (1, 0.001), (2, 0.0005)],
        "acc": [(0, 0.5), (1, 0.75)],
    }


def test_a_pattern_whose_optional_group_took_no_part_counts_the_line_as_skipped(
    tmp_path: Path,
) -> None:
    """`loss=([0-9.]+)?` matches `loss=abc` with its group empty-handed (None): that line's
    loss is left out and said, where it was a crash that lost the run's record."""
    patterns = (("step", r"step (\d+)"), ("loss", r"loss=([0-9.]+)?"))
    parsed = parse_stdout(["step 0 loss=abc", "step 1 loss=0.5"], patterns)
    assert parsed.series == {"loss": [(1, 0.5)]}
    assert parsed.skipped == (
        Skipped("experiment.metrics.patterns.loss captured no number", 1, 1, "nothing"),
    )
    (tmp_path / "stdout.log").write_text("step 0 loss=abc\nstep 1 loss=0.5\n")
    files = read_run_files(tmp_path, None, patterns)
    assert run_warnings(files, {"primary": "loss", "series": merge(*files.values())}) == (
        "stdout.log: 1 line where experiment.metrics.patterns.loss captured no number, so that "
        "value is left out (line 1: it captured nothing); make the pattern's group capture just "
        "the number",
    )


def test_printed_values_that_are_not_numbers_are_said_like_a_files_lines() -> None:
    printed = [
        "step 0",
        "loss=0.5 acc=0.25",
        "loss=tensor(0.5000) acc=x",  # `print(f"loss={loss}")` of a tensor
        "loss=0.25)",
        "step oops",
        "loss=" + "x" * 100,
    ]
    patterns = (("step", r"step (\S+)"), ("loss", r"loss=(\S+)"), ("acc", r"acc=(\S+)"))
    parsed = parse_stdout(printed, patterns)
    assert parsed.series == {"loss": [(0, 0.5)], "acc": [(0, 0.25)]}
    assert [s.describe("stdout.log") for s in parsed.skipped] == [
        "stdout.log: 3 lines where experiment.metrics.patterns.loss captured no number, so those "
        "values are left out (the first is line 3: it captured 'tensor(0.5000)'); make the "
        "pattern's group capture just the number",
        "stdout.log: 1 line where experiment.metrics.patterns.acc captured no number, so that "
        "value is left out (line 3: it captured 'x'); make the pattern's group capture just the "
        "number",
        "stdout.log: 1 line where experiment.metrics.patterns.step captured no number, so that "
        "value is left out (line 5: it captured 'oops'); make the pattern's group capture just "
        "the number",
    ]
    long = parse_stdout(printed[-1:], patterns).skipped[0].captured
    assert long == "'" + "x" * 36 + "..."


def test_a_printed_step_that_is_no_integer_is_said_not_silently_skipped(tmp_path: Path) -> None:
    """`step 2.5` or `step nan` gave no step, and said nothing: the values after it landed on
    the step before. An integral float (`1.0`, `1e3`) is a step."""
    printed = [
        "step 1.0 loss=0.5",
        "step 2.5 loss=0.25",
        "loss=0.2",
        "step nan loss=0.125",
        "step inf",
        "step 1e3 loss=0.0625",
    ]
    patterns = (("step", r"step (\S+)"), ("loss", r"loss=(\S+)"))
    parsed = parse_stdout(printed, patterns)
    assert parsed.series == {
        "loss": [(1, 0.5), (1, 0.25), (1, 0.2), (1, 0.125), (1000, 0.0625)],
    }
    assert parsed.skipped == (
        Skipped("experiment.metrics.patterns.step captured no integer step", 3, 2, "'2.5'"),
    )
    (tmp_path / "stdout.log").write_text("\n".join(printed[:2]) + "\n")
    files = read_run_files(tmp_path, None, patterns)
    assert run_warnings(files, {"primary": "loss", "series": merge(*files.values())}) == (
        "stdout.log: 1 line where experiment.metrics.patterns.step captured no integer step, so "
        "that step is left out and the values after keep the step before (line 2: it captured "
        "'2.5'); make the pattern's group capture just an integer step",
    )
    assert [s.describe("stdout.log") for s in parsed.skipped] == [
        "stdout.log: 3 lines where experiment.metrics.patterns.step captured no integer step, so "
        "those steps are left out and the values after keep the step before (the first is line "
        "2: it captured '2.5'); make the pattern's group capture just an integer step",
    ]


def test_printed_nan_and_infinities_are_numbers() -> None:
    printed = ["loss=nan", "loss=inf", "loss=-inf", "loss=NaN", "loss=Infinity", "loss=-Infinity"]
    parsed = parse_stdout(printed, (("loss", r"loss=(\S+)"),))
    values = [v for _, v in parsed.series["loss"]]
    assert math.isnan(values[0]) and math.isnan(values[3])
    assert values[1:3] + values[4:] == [math.inf, -math.inf, math.inf, -math.inf]
    assert parsed.skipped == ()


DOCS = Path(__file__).parents[2] / "docs" / "run.md"


def test_the_patterns_toolkit_suggests_read_what_python_prints() -> None:
    """docs/run.md's example and the one config errors give, as a user copies them."""
    docs = re.search(r"`metrics: \{patterns: (\{.*\})\}`", DOCS.read_text())
    assert docs is not None
    loss = 1e-05
    printed = [
        f"step 0 loss={loss}",
        f"step 1 loss={loss * 2:.4f}, acc=0.5",
        f"step 2 loss={math.nan}",
        f"step 3 loss={-math.inf}; acc=0",
    ]
    for example in (docs.group(1), f"{{step: 'step (\\d+)', {EXAMPLE_PATTERN}}}"):
        patterns = tuple(yaml.safe_load(example).items())
        parsed = parse_stdout(printed, patterns)
        assert parsed.skipped == ()
        assert parsed.series["loss"][:2] == [(0, 1e-05), (1, 0.0)]
        assert math.isnan(parsed.series["loss"][2][1])
        assert parsed.series["loss"][3] == (3, -math.inf)
    tensor = re.search(r"or write `(loss=tensor.*?)`", DOCS.read_text())
    assert tensor is not None
    printed = ["loss=tensor(0.5000)", "loss=tensor(0.2500, grad_fn=<AddBackward0>)"]
    parsed = parse_stdout(printed, (("loss", tensor.group(1)),))
    assert parsed.series == {"loss": [(0, 0.5), (1, 0.25)]}


def test_a_step_of_true_is_no_step_and_the_record_of_it_reads_back(tmp_path: Path) -> None:
    """JSON's true is no integer (Python's bool is one): counted like a line without a step,
    so the record written from it is one toolkit reads back."""
    from toolkit.record import read_record, write_record

    parsed = parse_json_lines(['{"step": true, "loss": 0.5}', '{"step": true, "loss": 0.25}'])
    assert parsed.series == {"loss": [(0, 0.5), (1, 0.25)]}
    assert all(type(step) is int for step, _ in parsed.series["loss"])
    doc = {
        "schema": "toolkit.run/1",
        "id": "r",
        "metrics": {"series": {"loss": [list(p) for p in parsed.series["loss"]]}},
    }
    write_record(tmp_path, doc)
    assert read_record(tmp_path)["metrics"]["series"]["loss"] == [[0, 0.5], [1, 0.25]]


def test_a_metric_from_log_and_the_metrics_file_is_merged_by_step(tmp_path: Path) -> None:
    """Each source's points are in the record: log() at step 0 and the file at step 9."""
    (tmp_path / "outputs").mkdir()
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "values": {"val_loss": 5}}\n')
    (tmp_path / "outputs" / "m.jsonl").write_text('{"step": 9, "val_loss": 1}\n')
    files = read_run_files(tmp_path, "m.jsonl")
    series = merge(*(parsed.series for parsed in files.values()), {})
    assert series == {"val_loss": [(0, 5.0), (9, 1.0)]}
    assert final(series, "val_loss") == 1.0
    recorded = {"primary": "val_loss", "series": series}
    assert run_warnings(files, recorded) == ()  # no step with two values


def test_where_sources_give_a_step_different_values_the_earlier_is_kept_and_said(
    tmp_path: Path,
) -> None:
    (tmp_path / "outputs").mkdir()
    logged = [{"step": s, "values": {"loss": 1.0 / (s + 1)}} for s in range(3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in logged))
    (tmp_path / "outputs" / "m.jsonl").write_text(
        '{"step": 1, "loss": 0.75}\n{"step": 2, "loss": 0.125}\n{"step": 3, "loss": 0.25}\n'
    )
    files = read_run_files(tmp_path, "m.jsonl")
    series = merge(*(parsed.series for parsed in files.values()))
    assert series == {"loss": [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25)]}
    assert run_warnings(files, {"primary": "loss", "series": series}) == (
        "loss differs between toolkit.runtime.log() and m.jsonl (experiment.metrics.file) at "
        "2 steps (the first is step 1: 0.5 and 0.75): the record has toolkit.runtime.log()'s "
        "values",
    )


def test_printed_values_fill_in_steps_the_files_lack() -> None:
    """A printed value is often rounded: at a step a file gives, the file's value is kept."""
    logged = {"loss": [(0, 0.123456), (2, 0.0625)]}
    printed = parse_stdout(
        ["step 0 loss=0.1235", "step 1 loss=0.09", "step 2 loss=0.0625"],
        (("step", r"step (\d+)"), ("loss", r"loss=([0-9.]+)")),
    ).series
    assert merge(logged, printed) == {"loss": [(0, 0.123456), (1, 0.09), (2, 0.0625)]}
    assert merge({"acc": [(5, 0.5), (1, 0.25)]}, {}) == {"acc": [(5, 0.5), (1, 0.25)]}


def test_a_metric_logged_without_a_step_is_not_merged_with_a_files_steps(
    tmp_path: Path,
) -> None:
    """log(loss=...) counts 0, 1, 2; the file's steps are 100, 200, 300: not one series of six
    points, but log()'s three, as logged, and the run says why."""
    (tmp_path / "outputs").mkdir()
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps({"values": {"loss": v}}) + "\n" for v in (1.0, 0.5, 0.25))
    )
    (tmp_path / "outputs" / "m.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": s / 1000}) + "\n" for s in (100, 200, 300))
    )
    files = read_run_files(tmp_path, "m.jsonl")
    assert files["metrics.jsonl"].counted == {"loss"}
    assert files["outputs/m.jsonl"].counted == frozenset()
    series = merge(*files.values())
    assert series == {"loss": [(0, 1.0), (1, 0.5), (2, 0.25)]}
    assert final(series, "loss") == 0.25
    assert run_warnings(files, {"primary": "loss", "series": series}) == (
        "loss from toolkit.runtime.log() and m.jsonl (experiment.metrics.file) is not merged: "
        "toolkit.runtime.log() gives it without a step (its steps only count its values); the "
        "record has toolkit.runtime.log()'s 3 points only, as logged; give `step` in both to "
        "merge them",
    )


def test_a_source_whose_steps_restart_is_kept_as_logged() -> None:
    """Two phases, each from step 0: one more step from another source does not interleave
    them (and so change the final value)."""
    phases = {"loss": [(0, 1.0), (1, 0.5), (0, 0.9), (1, 0.4)]}
    series = merge(phases, {"loss": [(2, 0.3)]})
    assert series == phases
    assert final(series, "loss") == 0.4
    # the other way round: the later source's steps go back
    assert merge({"loss": [(5, 0.3)]}, phases) == {"loss": [(5, 0.3)]}


def test_metrics_whose_steps_do_not_line_up_are_said_and_not_merged(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    (tmp_path / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"step": s, "values": {"loss": v}}) + "\n"
            for s, v in ((0, 1.0), (1, 0.5), (0, 0.9), (1, 0.4))
        )
    )
    (tmp_path / "outputs" / "m.jsonl").write_text('{"step": 2, "loss": 0.3}\n')
    files = read_run_files(tmp_path, "m.jsonl")
    assert run_warnings(files, {"primary": "loss", "series": {"loss": [[0, 1.0]]}}) == (
        "loss from toolkit.runtime.log() and m.jsonl (experiment.metrics.file) is not merged: "
        "toolkit.runtime.log()'s steps go back (from 1 to 0), so merging by step would "
        "interleave its points; the record has toolkit.runtime.log()'s 4 points only, as "
        "logged; give steps that never go back in both to merge them, or log each phase under "
        "a name of its own",
    )
    # a source that would add no step loses nothing: said as before, by its conflicts
    (tmp_path / "outputs" / "m.jsonl").write_text('{"step": 1, "loss": 0.75}\n')
    files = read_run_files(tmp_path, "m.jsonl")
    assert merge(*files.values()) == {"loss": [(0, 1.0), (1, 0.5), (0, 0.9), (1, 0.4)]}
    assert run_warnings(files, {"primary": "loss", "series": {"loss": [[0, 1.0]]}}) == (
        "loss differs between toolkit.runtime.log() and m.jsonl (experiment.metrics.file) at "
        "1 step (step 1: 0.5 and 0.75): the record has toolkit.runtime.log()'s value",
    )


def test_printed_metrics_without_a_step_are_not_merged_and_said(tmp_path: Path) -> None:
    """stdout is a source like the others, read with the run's files: counted matches are not
    the file's steps. Its rounded values at a step the file gives stay unsaid."""
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "m.jsonl").write_text(
        '{"step": 10, "loss": 0.123456}\n{"step": 20, "loss": 0.0625}\n'
    )
    (tmp_path / "stdout.log").write_text("loss=0.1235\nloss=0.0625\nloss=0.03\n")
    patterns = (("loss", r"loss=([0-9.]+)"),)
    assert parse_stdout(["loss=0.5"], patterns).counted == {"loss"}
    stepped = (("step", r"step (\d+)"), *patterns)
    assert parse_stdout(["step 1 loss=0.5"], stepped).counted == frozenset()
    files = read_run_files(tmp_path, "m.jsonl", patterns)
    assert list(files) == ["metrics.jsonl", "outputs/m.jsonl", "stdout.log"]
    series = merge(*files.values())
    assert series == {"loss": [(10, 0.123456), (20, 0.0625)]}
    assert run_warnings(files, {"primary": "loss", "series": series}) == (
        "loss from m.jsonl (experiment.metrics.file) and stdout (experiment.metrics.patterns) "
        "is not merged: stdout (experiment.metrics.patterns) gives it without a step (its steps "
        "only count its values); the record has m.jsonl (experiment.metrics.file)'s 2 points "
        "only, as logged; give `step` in both to merge them",
    )
    # printed with steps: merged by step, and a rounded value at a file's step is no news
    (tmp_path / "stdout.log").write_text("step 10 loss=0.1235\nstep 30 loss=0.03\n")
    files = read_run_files(tmp_path, "m.jsonl", stepped)
    series = merge(*files.values())
    assert series == {"loss": [(10, 0.123456), (20, 0.0625), (30, 0.03)]}
    assert run_warnings(files, {"primary": "loss", "series": series}) == ()


def test_same_values_and_a_sources_own_repeated_steps_are_no_conflict(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 0, "values": {"loss": NaN}}\n{"step": 0, "values": {"loss": 2}}\n'
    )
    (tmp_path / "outputs" / "m.jsonl").write_text('{"step": 0, "loss": NaN}\n')
    files = read_run_files(tmp_path, "m.jsonl")
    assert run_warnings(files, {"primary": "loss", "series": {"loss": [[0, 1]]}}) == ()


LOG = (
    b"step 0 loss=1.5\r\nbar 10%\rstep 1 loss=0.75\n"
    b"\xff\xfe step 2 loss=0.5 \xe2\x80\xa8step 3 loss=0.25\x0cstep 4\n\n"
    b"loss=0.125 caf\xc3\xa9 \xc3\n"
    b"step 5 loss=0.0625"  # the last line, without a newline
)
PATTERNS = (("step", r"step (\d+)"), ("loss", r"loss=([0-9.]+)"), ("bad", r"(\ufffd)"))


def test_a_log_read_a_line_at_a_time_gives_what_reading_it_whole_did(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(LOG)
    whole = parse_stdout(log.read_text(errors="replace").splitlines(), PATTERNS).series
    assert read_log(log, PATTERNS).series == whole
    assert whole["loss"] == [(0, 1.5), (1, 0.75), (2, 0.5), (3, 0.25), (4, 0.125), (5, 0.0625)]
    assert read_log(tmp_path / "missing.log", PATTERNS).series == {}


def test_a_log_without_patterns_is_not_read(tmp_path: Path) -> None:
    assert read_log(tmp_path, ()).series == {}  # a folder: opening it would fail


def test_a_big_log_costs_a_line_of_memory(tmp_path: Path) -> None:
    import tracemalloc

    log = tmp_path / "stdout.log"
    line = b"step 7 loss=0.5 " + b"x" * 80 + b"\n"
    log.write_bytes(line * 100_000)  # 10 MB
    tracemalloc.start()
    try:
        found = read_log(log, (("acc", r"acc=([0-9.]+)"),)).series
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == {}
    assert peak < 2_000_000


@pytest.mark.parametrize(
    ("line", "header", "step"),
    [
        ('{"step": 3, "loss": 1}', "", 3),
        ('{"step": 3, "values": {"loss": 1}}', "", 3),
        ('{"step": true, "loss": 1}', "", None),
        ('{"loss": 1}', "", None),
        ("{torn", "", None),
        ("4,0.5", "step,loss", 4),
        ("0.5, 4", "loss, step", 4),
        ("step,loss", "step,loss", None),
        ("4,0.5", "epoch,loss", None),
    ],
)
def test_the_step_of_a_metrics_file_line(line: str, header: str, step: int | None) -> None:
    assert line_step(line, header) == step
