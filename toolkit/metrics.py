"""Metric series from a metrics file, the runtime's log() API, or stdout patterns."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

Series = dict[str, list[tuple[int, float]]]  # metric -> [(step, value)], in the order logged


def from_json_lines(lines: Iterable[str]) -> Series:
    """Series from JSON lines like {"step": 3, "loss": 0.5} or {"step": 3, "values": {...}}."""
    series: Series = {}
    counters: dict[str, int] = {}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a crashed run
        if not isinstance(entry, dict):
            continue
        values = entry.get("values", entry)
        step = entry.get("step")
        for name, value in values.items():
            if name in ("step", "time", "epoch") or isinstance(value, bool):
                continue
            if not isinstance(value, int | float):
                continue
            at = step if isinstance(step, int) else counters.get(name, 0)
            counters[name] = at + 1
            series.setdefault(name, []).append((at, float(value)))
    return series


def from_file(path: Path) -> Series:
    """Series from a JSON-lines file, or a JSON file holding a list of entries or one entry."""
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return from_json_lines(json.dumps(e) for e in entries)
    if stripped.startswith("{") and "\n{" not in stripped.strip():
        return from_json_lines([stripped])
    return from_json_lines(text.splitlines())


def from_stdout(lines: Iterable[str], patterns: tuple[tuple[str, str], ...]) -> Series:
    """Series read from printed lines with one regex (one group) per metric; steps count matches."""
    compiled = [(name, re.compile(pattern)) for name, pattern in patterns]
    series: Series = {}
    for line in lines:
        for name, regex in compiled:
            match = regex.search(line)
            if match:
                try:
                    value = float(match.group(1))
                except ValueError:
                    continue
                points = series.setdefault(name, [])
                points.append((len(points), value))
    return series


def merge(*sources: Series) -> Series:
    """Combine series; a metric found in an earlier source wins."""
    merged: Series = {}
    for source in sources:
        for name, points in source.items():
            merged.setdefault(name, points)
    return merged


def final(series: Series, name: str | None) -> float | None:
    """The last value of a metric, or None."""
    if not name or not series.get(name):
        return None
    return series[name][-1][1]
