"""Metric series from a metrics file, the runtime's log() API, or stdout patterns."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

Series = dict[str, list[tuple[int, float]]]  # metric -> [(step, value)], in the order logged

# How a record writes non-finite values (strict JSON has no NaN); a metrics file may use them too.
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_NOT_METRICS = ("step", "time", "epoch")
NOT_JSON = "not JSON"
NOT_AN_OBJECT = "not a JSON object"
VALUES_NOT_AN_OBJECT = "'values' is not an object"
STRING_NUMBERS = "numbers written as strings"
# a printed step that is a number but no integer (2.5, nan, inf): a step counts, it is no value
NO_INTEGER_STEP = "experiment.metrics.patterns.step captured no integer step"


@dataclass(frozen=True)
class Skipped:
    """Lines of a metrics file that were left out, or partly left out, for one reason."""

    reason: str
    lines: int
    first_line: int  # 1-based, so the user can look at one
    # what a stdout pattern's group captured on the first line ("'abc'", "nothing"), which
    # says what is wrong with the pattern; None for a metrics file's line, which says it itself
    captured: str | None = None

    def describe(self, file: str) -> str:
        """E.g. "metrics.jsonl: 3 lines skipped (not JSON; the first is line 7)"."""
        count = f"{self.lines} line{'s' if self.lines != 1 else ''}"
        where = "line" if self.lines == 1 else "the first is line"
        if self.reason == NO_INTEGER_STEP:
            those = "that step is" if self.lines == 1 else "those steps are"
            return (
                f"{file}: {count} where {self.reason}, so {those} left out and the values "
                f"after keep the step before ({where} {self.first_line}: it captured "
                f"{self.captured}); make the pattern's group capture just an integer step"
            )
        if self.captured is not None:
            those = "that value is" if self.lines == 1 else "those values are"
            return (
                f"{file}: {count} where {self.reason}, so {those} left out "
                f"({where} {self.first_line}: it captured {self.captured}); "
                "make the pattern's group capture just the number"
            )
        if self.reason == STRING_NUMBERS:
            return (
                f"{file}: {count} with {self.reason}, and those values left out "
                f"({where} {self.first_line}); "
                'write numbers without quotes, e.g. {"loss": 0.5}'
            )
        return f"{file}: {count} skipped ({self.reason}; {where} {self.first_line})"


@dataclass(frozen=True)
class Parsed:
    """The series read from one metrics file, and what was left out of it."""

    series: Series
    skipped: tuple[Skipped, ...] = ()
    # metrics given without a step at least once: their steps count their values, and are not
    # another source's steps (`merge` does not merge them)
    counted: frozenset[str] = frozenset()


class _Tally:
    """Skipped lines by reason, in the order the reasons first came up."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[int, int, str | None]] = {}

    def add(self, reason: str, line_number: int, captured: str | None = None) -> None:
        count, first, example = self._found.get(reason, (0, line_number, captured))
        self._found[reason] = (count + 1, first, example)

    def result(self) -> tuple[Skipped, ...]:
        return tuple(Skipped(r, *found) for r, found in self._found.items())


def parse_json_lines(lines: Iterable[str]) -> Parsed:
    """Series from JSON lines like {"step": 3, "loss": 0.5} or {"step": 3, "values": {...}}.

    Strings are not metrics ({"phase": "train"} is left alone), except that numbers written as
    strings ("0.5") are counted as skipped: that is a mistake worth hearing about. "NaN",
    "Infinity" and "-Infinity" are read as those values, the way a record writes them.
    """
    series: Series = {}
    counters: dict[str, int] = {}
    counted: set[str] = set()
    tally = _Tally()
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            tally.add(NOT_JSON, number)  # also a torn last line of a crashed run
            continue
        if not isinstance(entry, dict):
            tally.add(NOT_AN_OBJECT, number)
            continue
        values = entry.get("values", entry)
        if not isinstance(values, dict):
            tally.add(VALUES_NOT_AN_OBJECT, number)
            continue
        step = entry.get("step")
        quoted = False
        for name, raw in values.items():
            if name in _NOT_METRICS:
                continue
            value = _number(raw)
            if value is None:
                quoted = quoted or _is_quoted_number(raw)
                continue
            # a step is an integer, and JSON's true is none (Python takes it for 1)
            if type(step) is int:
                at = step
            else:
                at = counters.get(name, 0)
                counted.add(name)
            counters[name] = at + 1
            series.setdefault(name, []).append((at, value))
        if quoted:
            tally.add(STRING_NUMBERS, number)
    return Parsed(series, tally.result(), frozenset(counted))


def read_file(path: Path) -> Parsed:
    """A JSON-lines file, or a JSON file holding a list of entries or one entry; none: empty."""
    if not path.is_file():
        return Parsed({})
    text = path.read_text(encoding="utf-8", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = f"not a JSON list: {exc.msg}"
            return Parsed({}, (Skipped(reason, len(text.splitlines()), exc.lineno),))
        return parse_json_lines(json.dumps(e) for e in entries)
    if stripped.startswith("{") and "\n{" not in stripped.strip():
        return parse_json_lines([stripped])
    return parse_json_lines(text.splitlines())


def read_log(path: Path, patterns: tuple[tuple[str, str], ...]) -> Parsed:
    """Series read from a log of printed output (`parse_stdout`), a line at a time: a log of
    any size costs one line of memory, and none is read when there are no patterns."""
    if not patterns:
        return Parsed({})
    try:
        # newline="": lines end as splitlines() ends them (a progress bar's \r too), which
        # `_split` finishes for its rarer line ends, so the lines are those of read().splitlines()
        with path.open(encoding="utf-8", errors="replace", newline="") as log:
            return parse_stdout(_split(log), patterns)
    except FileNotFoundError:
        return Parsed({})


def _split(chunks: Iterable[str]) -> Iterator[str]:
    for chunk in chunks:
        yield from chunk.splitlines()


def parse_stdout(lines: Iterable[str], patterns: tuple[tuple[str, str], ...]) -> Parsed:
    """Series read from printed lines with one regex (one group) per metric.

    As in a metrics file, `step`, `time` and `epoch` are not metrics: a `step` pattern gives
    the step of the metrics on its line and on the lines after it, up to the next step. With
    none, a metric's steps count its matches (`Parsed.counted` names it). A match whose group
    captured no number (`nan` and `inf` are numbers), or a step that is no integer (`2.5`,
    `nan`; `1.0` and `1e3` are integers), is counted in `Parsed.skipped`.
    """
    if not patterns:
        return Parsed({})
    compiled = [(name, re.compile(pattern)) for name, pattern in patterns]
    series: Series = {}
    counters: dict[str, int] = {}
    counted: set[str] = set()
    tally = _Tally()
    step: int | None = None
    for number, line in enumerate(lines, start=1):
        found, captured = _printed_values(line, compiled, tally, number)
        if "step" in found:
            if found["step"].is_integer():
                step = int(found["step"])
            else:  # the values after it would silently keep the step before
                tally.add(NO_INTEGER_STEP, number, _shown(captured["step"]))
        for name, value in found.items():
            if name in _NOT_METRICS:
                continue
            if step is not None:
                at = step
            else:
                at = counters.get(name, 0)
                counted.add(name)
            counters[name] = at + 1
            series.setdefault(name, []).append((at, value))
    return Parsed(series, tally.result(), frozenset(counted))


def _printed_values(
    line: str, compiled: list[tuple[str, re.Pattern[str]]], tally: _Tally, number: int
) -> tuple[dict[str, float], dict[str, str]]:
    """The value each pattern reads from one printed line, and the text it read it from;
    where its group captured no number, `tally` counts the line, with what it captured for
    the user to see."""
    found = {}
    texts = {}
    for name, regex in compiled:
        match = regex.search(line)
        if not match:
            continue
        # an optional group, `(...)?`, that took no part in the match captured None
        captured = match.group(1)
        value = _float(captured)
        if value is not None:
            found[name], texts[name] = value, captured
            continue
        tally.add(
            f"experiment.metrics.patterns.{name} captured no number", number, _shown(captured)
        )
    return found, texts


def _shown(captured: str | None) -> str:
    """What a pattern's group captured, as `Skipped.captured` shows it: "'abc'", "nothing"."""
    shown = repr(captured) if captured else "nothing"
    if len(shown) > 40:  # `(.*)` captures the rest of a line that may be long
        shown = shown[:37] + "..."
    return shown


def merge(*sources: Series | Parsed) -> Series:
    """Combine series: a metric's points from several sources, by step. At a step an earlier
    source already gives, a later source's point is left out (`conflicts` says where its value
    differs); a metric from more than one source has its points in the order of their steps.

    Only where steps mean the same in every source: a metric that a source (a `Parsed` one)
    gives without a step, or whose steps go back in one source, is kept from its first source
    alone, as logged (`unmerged` says so)."""
    return _combine([("", source) for source in sources])[0]


@dataclass(frozen=True)
class Unmerged:
    """A metric from several sources whose steps do not line up: `merge` keeps the first's."""

    metric: str
    kept: str
    others: tuple[str, ...]  # the other sources that give it, in `merge`'s order
    points: int  # in the kept source
    by: str  # the source that gives it without a step, or whose steps go back
    went_back: tuple[int, int] | None  # None: `by` gives it without a step

    def describe(self) -> str:
        """E.g. "loss from toolkit.runtime.log() and m.jsonl (...) is not merged: ..."."""
        points = f"{self.points} point{'s' if self.points != 1 else ''}"
        every = "both" if len(self.others) == 1 else "all of them"
        names = (self.kept, *self.others)
        sources = f"{', '.join(names[:-1])} and {names[-1]}"
        if self.went_back is None:
            why = f"{self.by} gives it without a step (its steps only count its values)"
            hint = f"give `step` in {every} to merge them"
        else:
            why = (
                f"{self.by}'s steps go back (from {self.went_back[0]} to {self.went_back[1]}), "
                "so merging by step would interleave its points"
            )
            hint = (
                f"give steps that never go back in {every} to merge them, or log each phase "
                "under a name of its own"
            )
        return (
            f"{self.metric} from {sources} is not merged: "
            f"{why}; the record has {self.kept}'s {points} only, as logged; {hint}"
        )


def unmerged(sources: Mapping[str, Parsed]) -> tuple[Unmerged, ...]:
    """The metrics that `merge`, given these sources by name and in this order, keeps from
    their first source alone, leaving out points the others would have added."""
    return tuple(_combine(list(sources.items()))[1])


_Points = list[tuple[int, float]]


def _combine(sources: list[tuple[str, Series | Parsed]]) -> tuple[Series, list[Unmerged]]:
    """`merge`, and the metrics it kept from their first source alone."""
    merged: Series = {}
    apart: list[Unmerged] = []
    named = [
        (name, src.series, src.counted) if isinstance(src, Parsed) else (name, src, frozenset())
        for name, src in sources
    ]
    for metric in dict.fromkeys(m for _, series, _ in named for m in series):
        given = [(n, series.get(metric, []), metric in counted) for n, series, counted in named]
        given = [(n, points, counted) for n, points, counted in given if points]
        if not given:
            merged[metric] = []
            continue
        first, points, _ = given[0]
        merged[metric] = list(points)  # one source's points stay as it logged them
        if len(given) == 1:
            continue
        why = _apart(given)
        if why is None:
            for _, more, _ in given[1:]:
                have = {step for step, _ in merged[metric]}
                extra = [(step, value) for step, value in more if step not in have]
                if extra:
                    merged[metric] = sorted(merged[metric] + extra, key=lambda point: point[0])
            continue
        have = {step for step, _ in points}
        if any(s not in have for _, more, _ in given[1:] for s, _ in more):
            others = tuple(n for n, _, _ in given[1:])
            apart.append(Unmerged(metric, first, others, len(points), *why))
        # else the others would add nothing, so nothing is lost: no news
    return merged, apart


def _apart(given: list[tuple[str, _Points, bool]]) -> tuple[str, tuple[int, int] | None] | None:
    """Why one metric's points from several sources cannot be merged by step: the source that
    counted its steps, or one whose steps go back, and where; None where they can."""
    for name, _, counted in given:
        if counted:
            return name, None
    for name, points, _ in given:
        for (a, _), (b, _) in itertools.pairwise(points):
            if b < a:
                return name, (a, b)
    return None


@dataclass(frozen=True)
class Conflict:
    """Steps of one metric at which two sources give different values; `merge` keeps `kept`'s."""

    metric: str
    kept: str
    dropped: str
    steps: int
    first_step: int
    kept_value: float
    dropped_value: float

    def describe(self) -> str:
        """E.g. "val_loss differs between toolkit.runtime.log() and m.jsonl (...) at 1 step..."."""
        count = f"{self.steps} step{'s' if self.steps != 1 else ''}"
        where = "step" if self.steps == 1 else "the first is step"
        values = "value" if self.steps == 1 else "values"
        return (
            f"{self.metric} differs between {self.kept} and {self.dropped} at {count} "
            f"({where} {self.first_step}: {self.kept_value!r} and {self.dropped_value!r}): "
            f"the record has {self.kept}'s {values}"
        )


def conflicts(sources: Mapping[str, Series]) -> tuple[Conflict, ...]:
    """Where sources, by name and in `merge`'s order, give one metric different values at a
    step: the later source's value is not in the merged series."""
    found: dict[tuple[str, str, str], Conflict] = {}
    metrics = dict.fromkeys(name for series in sources.values() for name in series)
    for metric in metrics:
        kept: dict[int, tuple[str, float]] = {}  # step -> the source and value merge keeps
        for source, series in sources.items():
            added: dict[int, tuple[str, float]] = {}
            for step, value in series.get(metric, ()):
                if step not in kept:
                    added.setdefault(step, (source, value))
                    continue
                by, was = kept[step]
                if was == value or (math.isnan(was) and math.isnan(value)):
                    continue
                key = (metric, by, source)
                earlier = found.get(key)
                found[key] = (
                    Conflict(metric, by, source, 1, step, was, value)
                    if earlier is None
                    else replace(earlier, steps=earlier.steps + 1)
                )
            kept.update(added)  # a source's own repeated steps are no conflict
    return tuple(found.values())


def final(series: Series, name: str | None) -> float | None:
    """The last value of a metric, or None."""
    if not name or not series.get(name):
        return None
    return series[name][-1][1]


def missing_primary(primary: str | None, seen: Iterable[str]) -> str | None:
    """Why the primary metric has no value, with a did-you-mean; None when it has one."""
    names = sorted(set(seen))
    if not primary or primary in names:
        return None
    if not names:
        return (
            f"primary metric {primary!r} was not found; no metrics were read "
            "(from experiment.metrics.file, toolkit.runtime.log or experiment.metrics.patterns)"
        )
    from toolkit.config import close_match

    close = close_match(primary, names)
    hint = f"; did you mean {close!r}? (experiment.metrics.primary)" if close else ""
    return f"primary metric {primary!r} was not found; metrics seen: {', '.join(names)}{hint}"


STDOUT_LOG = "stdout.log"


def read_run_files(
    run_dir: Path, file: str | None, patterns: tuple[tuple[str, str], ...] = ()
) -> dict[str, Parsed]:
    """A run's metrics sources, read once, by their paths in the run folder, in `merge`'s order:
    what toolkit.runtime.log() wrote, `file` (experiment.metrics.file) as the run collected it,
    and, with `patterns` (experiment.metrics.patterns), its stdout."""
    from toolkit.runtime import METRICS_FILE

    names = [METRICS_FILE, *([f"outputs/{file}"] if file else [])]
    found = {name: read_file(run_dir / name) for name in names}
    if patterns:
        found[STDOUT_LOG] = read_log(run_dir / STDOUT_LOG, patterns)
    return found


def run_warnings(
    files: Mapping[str, Parsed], recorded: Mapping[str, Any], *, primary: bool = True
) -> tuple[str, ...]:
    """What to tell the user about a finished run's metrics: lines of its metrics files
    (`read_run_files`) that were left out, a metric whose sources' steps do not line up, values
    of a metric that two files give differently at one step, and (with `primary`) a primary
    metric that was never logged. `recorded`: the record's `metrics`."""
    notes = [s.describe(name) for name, parsed in files.items() for s in parsed.skipped]
    apart = unmerged({_source(name): parsed for name, parsed in files.items()})
    # a printed value is often rounded: stdout only fills in steps, silently
    differ = conflicts(
        {_source(name): parsed.series for name, parsed in files.items() if name != STDOUT_LOG}
    )
    said = {u.metric for u in apart}  # kept from one source: not also said step by step
    missing = primary and missing_primary(recorded.get("primary"), recorded.get("series") or {})
    return (
        *notes,
        *(u.describe() for u in apart),
        *(c.describe() for c in differ if c.metric not in said),
        *([missing] if missing else []),
    )


def _source(name: str) -> str:
    """A metrics source of the run folder (`read_run_files`), as the user wrote to it."""
    from toolkit.runtime import METRICS_FILE

    if name == METRICS_FILE:
        return "toolkit.runtime.log()"
    if name.startswith("outputs/"):
        return f"{name.removeprefix('outputs/')} (experiment.metrics.file)"
    if name == STDOUT_LOG:
        return "stdout (experiment.metrics.patterns)"
    return name


def line_step(line: str, header: str = "") -> int | None:
    """The step one line of a metrics file gives, or None: a JSON line's integer "step", or,
    in a CSV file whose first line (`header`) names a `step` column, that column's integer."""
    text = line.strip()
    if text.startswith("{"):
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            return None
        step = entry.get("step") if isinstance(entry, dict) else None
        return step if type(step) is int else None
    import csv

    columns = [name.strip() for name in next(csv.reader([header]), [])]
    if "step" not in columns:
        return None
    cells = next(csv.reader([text]), [])
    at = columns.index("step")
    try:
        return int(cells[at]) if at < len(cells) else None
    except ValueError:
        return None  # the header itself, or a row without one


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    return None


def _float(text: str | None) -> float | None:
    """A printed number, as float() reads it: `nan`, `inf` and `-Infinity` too."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _is_quoted_number(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True
