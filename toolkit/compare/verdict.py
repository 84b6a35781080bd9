"""Verdicts and their order: identical < within_tolerance < diverged."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Verdict = Literal["identical", "within_tolerance", "diverged"]

_RANK: dict[Verdict, int] = {"identical": 0, "within_tolerance": 1, "diverged": 2}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe verdict; nothing to compare counts as identical."""
    return max(verdicts, key=_RANK.__getitem__, default="identical")


def verdict_of(*, bitwise_equal: bool, within_tolerance: bool) -> Verdict:
    """The verdict of one comparison from its two facts."""
    if bitwise_equal:
        return "identical"
    return "within_tolerance" if within_tolerance else "diverged"
