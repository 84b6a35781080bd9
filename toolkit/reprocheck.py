"""`toolkit repro-check`: run-to-run noise per target beside the gaps between targets,
variations and machines, with one sentence that answers "is this reproducible?"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from toolkit.compare import TolerancePolicy, Verdict, worst
from toolkit.diff import Run, RunDiff, diff_runs
from toolkit.errors import ConfigError

VARIABLES = {"threads": "thread count", "workers": "data-loader workers", "seed": "seed"}


@dataclass(frozen=True)
class Variation:
    """One value of one policy knob, run beside the control (one change at a time, as reprotest)."""

    name: str  # threads | workers | seed
    value: int

    @property
    def label(self) -> str:
        return f"{self.name}={self.value}"


@dataclass(frozen=True)
class Group:
    """Runs made under the same conditions: a target, a target with a variation, or a machine."""

    label: str
    kind: Literal["target", "variation", "imported"]
    target: str
    variation: Variation | None
    runs: tuple[Run, ...]


@dataclass(frozen=True)
class Pair:
    """One comparison: a run against its group's first run (noise) or a group against control."""

    role: Literal["noise", "gap"]
    group: str
    diff: RunDiff


@dataclass(frozen=True)
class ReproReport:
    """All groups, all comparisons, and the one-line answer."""

    control: str
    groups: tuple[Group, ...]
    pairs: tuple[Pair, ...]
    summary: str
    verdict: Verdict


def parse_variations(values: list[str]) -> list[Variation]:
    """`--vary threads=1,4` -> [threads=1, threads=4]."""
    found = []
    for text in values:
        name, sep, raw = text.partition("=")
        if not sep or name not in VARIABLES:
            raise ConfigError(
                f"--vary {text!r}: expected NAME=V1,V2 with NAME one of {', '.join(VARIABLES)}"
            )
        try:
            numbers = [int(v) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--vary {text!r}: values must be integers") from None
        if not numbers or any(n < (1 if name == "threads" else 0) for n in numbers):
            raise ConfigError(f"--vary {text!r}: give values like {name}=1,4")
        found += [Variation(name, n) for n in numbers]
    return found


def collect(
    targets: list[str],
    runs: int,
    variations: list[Variation],
    run_one: Callable[[str, Variation | None, int], Run],
) -> list[Group]:
    """Run N times per target, then once per variation and target."""
    groups = []
    for target in targets:
        made = tuple(run_one(target, None, i) for i in range(runs))
        groups.append(Group(target, "target", target, None, made))
        for variation in variations:
            one = (run_one(target, variation, 0),)
            groups.append(Group(f"{target} {variation.label}", "variation", target, variation, one))
    return groups


def imported_groups(runs: list[Run]) -> list[Group]:
    """Runs from other machines, grouped by machine and target."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        # a record without its host (Ctrl-C skipped the facts) may come from any machine
        host = (run.record.get("host") or {}).get("hostname") or "an unnamed host"
        native = " native" if run.record.get("native") else ""
        key = f"{run.record.get('target', '?')}{native} on {host}"
        by_key.setdefault(key, []).append(run)
    return [
        Group(label, "imported", str(found[0].record.get("target", "?")), None, tuple(found))
        for label, found in by_key.items()
    ]


def compare(groups: list[Group], policy: TolerancePolicy | None = None) -> ReproReport:
    """Noise within each group, the gap from each group to the control, and the summary line."""
    if not groups or not groups[0].runs:
        raise ConfigError("repro-check needs at least one run")
    control = groups[0].runs[0]
    pairs = []
    for group in groups:
        first = group.runs[0]
        for other in group.runs[1:]:
            pairs.append(Pair("noise", group.label, diff_runs(first, other, policy)))
        if first is not control:
            pairs.append(Pair("gap", group.label, diff_runs(control, first, policy)))
    verdict = worst(p.diff.verdict for p in pairs)
    return ReproReport(
        control=f"{groups[0].label} ({control.id})",
        groups=tuple(groups),
        pairs=tuple(pairs),
        summary=summarise(groups, pairs),
        verdict=verdict,
    )


def summarise(groups: list[Group], pairs: list[Pair]) -> str:
    """One line: reproducible per target, how far apart targets are, what variations change."""
    parts = []
    for group in groups:
        if group.kind == "variation":
            continue
        noise = [p for p in pairs if p.role == "noise" and p.group == group.label]
        total = len(group.runs)
        same = 1 + sum(p.diff.verdict == "identical" for p in noise)
        if total == 1:
            parts.append(f"{group.label}: 1 run")
        elif same == total:
            parts.append(f"reproducible on {group.label} ({same}/{total} identical)")
        else:
            worst_noise = max(noise, key=lambda p: abs(p.diff.headline or 0.0))
            parts.append(
                f"NOT reproducible on {group.label} ({same}/{total} identical; runs differ by "
                f"{_gap_text(worst_noise.diff)})"
            )
    control_label = groups[0].label
    for pair in pairs:
        group = next(g for g in groups if g.label == pair.group)
        if pair.role != "gap" or group.kind == "variation":
            continue
        if pair.diff.verdict == "identical":
            parts.append(f"{group.label} matches {control_label} bitwise")
        else:
            parts.append(f"{group.label} differs from {control_label} by {_gap_text(pair.diff)}")
    changed: dict[str, list[str]] = {}
    for pair in pairs:
        group = next(g for g in groups if g.label == pair.group)
        if pair.role == "gap" and group.variation and pair.diff.verdict != "identical":
            changed.setdefault(group.variation.name, []).append(str(group.variation.value))
    for name, values in changed.items():
        parts.append(f"{VARIABLES[name]} changes results ({name}={','.join(values)})")
    varied = {g.variation.name for g in groups if g.variation}
    for name in sorted(varied - changed.keys()):
        parts.append(f"{VARIABLES[name]} does not change results")
    return "; ".join(parts)


def _gap_text(d: RunDiff) -> str:
    metric = d.primary or (d.first_divergence[0] if d.first_divergence else "outputs")
    size = f"{abs(d.headline) * 100:.3g}%" if d.headline is not None else "?"
    where = f", first at step {d.first_divergence[1]}" if d.first_divergence else ""
    if d.headline == 0 and d.verdict != "identical":
        return f"0% in final {metric} but differs elsewhere{where}"
    return f"{size} in {metric}{where}"


def as_json(report: ReproReport) -> dict[str, Any]:
    """The versioned JSON document of a repro-check."""
    from toolkit.report import diff_json  # report imports this module: import when used

    return {
        "schema": "toolkit.repro-check/1",
        "verdict": report.verdict,
        "summary": report.summary,
        "control": report.control,
        "groups": [
            {
                "label": g.label,
                "kind": g.kind,
                "target": g.target,
                "variation": g.variation.label if g.variation else None,
                "runs": [r.id for r in g.runs],
            }
            for g in report.groups
        ],
        "pairs": [{"role": p.role, "group": p.group, **diff_json(p.diff)} for p in report.pairs],
    }
