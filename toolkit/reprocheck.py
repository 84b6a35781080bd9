"""`toolkit repro-check`: run-to-run noise per target beside the gaps between targets,
variations and machines, with one sentence that answers "is this reproducible?"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from toolkit.compare import TolerancePolicy, Verdict, worst
from toolkit.config import MAX_SEED
from toolkit.diff import Category, InputChange, Run, RunDiff, diff_runs, percent
from toolkit.errors import ConfigError

VARIABLES = {"threads": "thread count", "workers": "number of data-loader workers", "seed": "seed"}

# "failed": a run did not succeed, so the check could not be made; "not_compared": one run, and
# nothing to compare it with, or runs that recorded nothing to compare (no metrics, no outputs).
# Neither is "identical": no comparison is not a match.
ReproVerdict = Literal["identical", "within_tolerance", "diverged", "failed", "not_compared"]

_ENDED = {"failed": "failed", "engine_lost": "lost the Docker Engine", "interrupted": "stopped"}

# A gap beside repeated runs that differ is named a cause only when it is more than this many
# times the largest of their differences. One to three repeats cannot estimate a spread, only
# give a sample or two of it, and the ratio of two samples of the same noise is often large: with
# Gaussian noise, a gap that is pure noise is over 3 times one noise sample 18% of the time and
# over 10 times 5.5% of the time (--runs 2), 0.5% with two samples (--runs 3). Only an order of
# magnitude is safe to call a cause.
NOISE_FACTOR = 10

NOT_MEASURED = "one run per group, so run-to-run noise was not measured (run with --runs 2 or more)"
NOT_MEASURED_OTHER = (
    "the repeated runs ran other code or data than each other, so run-to-run noise was not measured"
)

# Inputs that make two runs two versions of the experiment, not two tries of one: how far apart
# they are says what the change did, not whether the experiment repeats, nor what a machine or a
# variation does. (Environment and hardware are what a reproducibility check is about.)
OTHER_VERSION: tuple[Category, ...] = ("code", "data")


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
    target: str  # its target as groups here are labelled, what a variation is compared with
    variation: Variation | None
    runs: tuple[Run, ...]
    # the target as toolkit.yaml and records name it, where `target` says more: "cpu" for
    # "cpu (native)"; the JSON's `target`, so that it reads the same for every kind of group
    target_name: str | None = None


@dataclass(frozen=True)
class Pair:
    """One comparison: a run against its group's first good run (noise), or the control (gap)."""

    role: Literal["noise", "gap"]
    group: str
    diff: RunDiff


@dataclass(frozen=True)
class FailedRun:
    """A run that did not succeed: it is compared with nothing."""

    group: str
    label: str  # "cpu #2", "cpu threads=1", "cpu on vm"
    run: Run

    @property
    def status(self) -> str:
        return str(self.run.record.get("status", "?"))

    @property
    def exit_code(self) -> int | None:
        code = self.run.record.get("exit_code")
        return code if isinstance(code, int) else None

    def describe(self) -> str:
        """The run by its label and id, and how it ended: "cpu #2 <id> failed with exit code 3"."""
        ended = _ENDED.get(self.status, f"ended {self.status!r}")
        code = f" with exit code {self.exit_code}" if self.exit_code is not None else ""
        return f"{self.label} {self.run.id} {ended}{code}"


@dataclass(frozen=True)
class ReproReport:
    """All groups, all comparisons, the runs that failed, and the one-line answer."""

    control: str
    groups: tuple[Group, ...]
    pairs: tuple[Pair, ...]  # between runs that succeeded
    failed: tuple[FailedRun, ...]
    summary: str
    verdict: ReproVerdict


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
        if not numbers:
            raise ConfigError(f"--vary {text!r}: give values like {name}=1,4")
        low, high = (1 if name == "threads" else 0), (MAX_SEED if name == "seed" else None)
        if any(n < low or (high is not None and n > high) for n in numbers):
            allowed = f"from {low} to {high}" if high is not None else f"from {low} up"
            raise ConfigError(f"--vary {text!r}: {name} takes integers {allowed}")
        found += [Variation(name, n) for n in numbers]
    return found


def collect(
    targets: list[str],
    runs: int,
    variations: list[Variation],
    run_one: Callable[[str, Variation | None, int], Run],
    *,
    native: bool = False,
) -> list[Group]:
    """Run N times per target, then once per variation and target."""
    groups = []
    for target in targets:
        label = target_label(target, native=native)  # as `toolkit runs` and `diff` name it
        made = tuple(run_one(target, None, i) for i in range(runs))
        groups.append(Group(label, "target", label, None, made, target))
        for variation in variations:
            one = (run_one(target, variation, 0),)
            groups.append(
                Group(f"{label} {variation.label}", "variation", label, variation, one, target)
            )
    return groups


def target_label(target: str, *, native: bool) -> str:
    """A target as runs made here are grouped under it: "cpu", "cpu (native)"."""
    return f"{target} (native)" if native else target


def comparable(runs: list[Run], control: Identity) -> tuple[list[Run], list[str]]:
    """The runs from elsewhere that are this check's experiment, each once; and why each other
    one is left out. Another project, command or determinism policy than the control's
    (`control`, from `run.identity`) is another experiment: its difference would be read as
    noise between machines."""
    seen: set[str] = set()
    kept, left_out = [], []
    for run in runs:
        if run.id in seen:
            continue  # named twice: counted once
        seen.add(run.id)
        theirs = identity_of(run.record)
        differs = [name for name in control if control[name] != theirs.get(name)]
        if differs:
            verb = "differs" if len(differs) == 1 else "differ"
            left_out.append(
                f"{run.id} left out: its {' and '.join(differs)} {verb} from this check's"
            )
        else:
            kept.append(run)
    return kept, left_out


Identity = dict[str, Any]  # project, command, determinism policy: what makes runs one experiment


def identity_of(record: dict[str, Any]) -> Identity:
    """A record's experiment, as `run.identity` gives a request's."""
    return {
        "project": record.get("project"),
        "command": record.get("command"),
        "determinism policy": (record.get("determinism") or {}).get("policy"),
    }


def imported_groups(runs: list[Run]) -> list[Group]:
    """Runs from other machines, grouped by machine and target."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        # a record without its host (Ctrl-C skipped the facts) may come from any machine
        host = (run.record.get("host") or {}).get("hostname") or "an unnamed host"
        key = f"{_target_label_of(run)} on {host}"
        by_key.setdefault(key, []).append(run)
    return [
        Group(
            label,
            "imported",
            _target_label_of(found[0]),
            None,
            tuple(found),
            str(found[0].record.get("target", "?")),
        )
        for label, found in by_key.items()
    ]


def _target_label_of(run: Run) -> str:
    native = bool(run.record.get("native"))
    return target_label(str(run.record.get("target", "?")), native=native)


def compare(groups: list[Group], policy: TolerancePolicy | None = None) -> ReproReport:
    """Noise within each group, the gap from each group to the control, and the summary line.

    Runs that did not succeed are left out of every comparison and make the verdict "failed".
    """
    if not any(group.runs for group in groups):
        raise ConfigError("repro-check needs at least one run")
    failed = tuple(
        FailedRun(group.label, _run_label(group, i), run)
        for group in groups
        for i, run in enumerate(group.runs)
        if not _succeeded(run)
    )
    first = {g.label: next((run for run in g.runs if _succeeded(run)), None) for g in groups}
    control = first[groups[0].label]
    pairs = []
    for group in groups:
        ok = [run for run in group.runs if _succeeded(run)]
        if not ok:
            continue
        for other in ok[1:]:
            pairs.append(Pair("noise", group.label, diff_runs(ok[0], other, policy)))
        # a variation is one change at a time: against its own target's runs, not the control
        reference = first.get(group.target) if group.kind == "variation" else control
        if reference is not None and ok[0] is not reference:
            pairs.append(Pair("gap", group.label, diff_runs(reference, ok[0], policy)))
    compared: list[Verdict] = []
    for p in pairs:
        if p.diff.verdict != "not_compared":
            compared.append(p.diff.verdict)
    verdict: ReproVerdict
    if failed:
        verdict = "failed"
    elif "diverged" in compared:  # found beside a comparison with nothing to compare: still news
        verdict = "diverged"
    elif len(compared) < len(pairs) or not pairs:
        verdict = "not_compared"
    else:
        verdict = worst(compared)
    return ReproReport(
        control=f"{groups[0].label} ({control.id if control else 'none: no run succeeded'})",
        groups=tuple(groups),
        pairs=tuple(pairs),
        failed=failed,
        summary=summarise(groups, pairs, failed),
        verdict=verdict,
    )


def summarise(groups: list[Group], pairs: list[Pair], failed: tuple[FailedRun, ...] = ()) -> str:
    """One line: reproducible per target, how far apart targets are, what variations change."""
    parts = []
    run_count = sum(len(g.runs) for g in groups)
    if failed:
        parts.append(
            f"could not check reproducibility: {len(failed)} of {run_count} runs did not succeed: "
            + ", ".join(f.describe() for f in failed)
        )
    elif not pairs:
        parts.append("nothing compared: only one run, and no other run to compare it with")
    # runs that recorded no metrics and no outputs: compared, but nothing said they match
    blind = [p for p in pairs if p.diff.verdict == "not_compared"]
    # a divergence found elsewhere is the verdict: it leads, and the blind comparisons follow it
    diverged = not failed and any(p.diff.verdict == "diverged" for p in pairs)
    if blind and not diverged:
        parts.append(_blind_text(blind, len(pairs), also=bool(failed)))
    made = len(pairs)
    pairs = [p for p in pairs if p.diff.verdict != "not_compared"]
    unknown = {f.group for f in failed} | {p.group for p in blind if p.role == "noise"}
    for group in groups:
        if group.kind == "variation" or group.label in unknown:
            continue  # a group with a failed or blind run is named above, not called reproducible
        own = [p for p in pairs if p.role == "noise" and p.group == group.label]
        # runs of other code or data than the group's first are no repeat of it: said apart,
        # and left out of the count, so that what a change did is not called irreproducible
        other = [p for p in own if other_version(p.diff)]
        if other:
            parts.append(_other_runs_text(group, other))
        total = len(group.runs) - len(other)
        runs = f"{total} runs" + (f" of the same {_kinds(other)}" if other else "")
        # every run is compared with the first: count those, not the first as a match of its own
        differ = [p for p in own if not other_version(p.diff) and p.diff.verdict != "identical"]
        if total == 1:
            if not other:
                parts.append(f"{group.label}: 1 run")
        elif not differ:
            parts.append(f"reproducible on {group.label} ({runs}, all identical)")
        else:
            how = _worst_gap_text(differ)
            verb = "differs" if len(differ) == 1 else "differ"
            parts.append(
                f"NOT reproducible on {group.label} ({runs}, {len(differ)} {verb} from the "
                f"first; runs differ {how})"
            )
    control_label = groups[0].label
    for pair in pairs:
        group = next(g for g in groups if g.label == pair.group)
        if pair.role != "gap" or group.kind == "variation":
            continue
        if other_version(pair.diff):  # what the change did: no machine's or target's doing
            parts.append(_other_gap_text(group.label, control_label, pair.diff))
            continue
        if pair.diff.verdict == "identical":
            parts.append(f"{group.label} matches {control_label} bitwise")
            continue
        why = _unexplained(pair, pairs, control_label)
        if why is None:
            parts.append(f"{group.label} differs from {control_label} {_gap_text(pair.diff)}")
        else:
            parts.append(
                f"cannot tell whether {group.label} differs from {control_label} beyond "
                f"run-to-run noise: {why}{_gaps_text([pair.diff], why)}"
            )
    # by variable and target: a variation's gap is weighed against its own target's noise
    several = len({g.target for g in groups if g.variation}) > 1
    changed: dict[tuple[str, str], list[str]] = {}
    untold: dict[tuple[str, str, str], list[tuple[str, RunDiff]]] = {}
    other_versions: list[tuple[str, str]] = []  # (variable, what it ran and how far apart)
    for pair in pairs:
        group = next(g for g in groups if g.label == pair.group)
        if pair.role == "gap" and group.variation and other_version(pair.diff):
            text = _other_gap_text(group.label, group.target, pair.diff)
            other_versions.append((group.variation.name, text))
        elif pair.role == "gap" and group.variation and pair.diff.verdict != "identical":
            name, value = group.variation.name, str(group.variation.value)
            on = group.target if several else ""
            why = _unexplained(pair, pairs, group.target)
            if why is None:
                changed.setdefault((name, on), []).append(value)
            else:
                untold.setdefault((name, on, why), []).append((value, pair.diff))
    for (name, on), values in changed.items():
        parts.append(f"{VARIABLES[name]} changes results ({_values(name, values, on)})")
    for (name, on, why), found in untold.items():
        values = [value for value, _ in found]
        parts.append(
            f"cannot tell whether the {VARIABLES[name]} changes results "
            f"({_values(name, values, on)}): {why}{_gaps_text([d for _, d in found], why)}"
        )
    parts += [text for _, text in other_versions]
    varied = {g.variation.name for g in groups if g.variation}
    unseen = unknown | {p.group for p in blind}
    unchecked = {g.variation.name for g in groups if g.variation and g.label in unseen}
    unchecked |= {name for name, _ in other_versions}  # not one change at a time
    named = {name for name, _ in changed} | {name for name, _, _ in untold}
    for name in sorted(varied - named - unchecked):
        parts.append(f"{VARIABLES[name]} does not change results")
    if blind and diverged:
        parts.append(_blind_text(blind, made, also=True))
    return "; ".join(parts)


def _blind_text(blind: list[Pair], total: int, *, also: bool) -> str:
    """Comparisons of runs that recorded nothing to compare, and what to do: "could not check
    reproducibility: nothing to compare in 1 of 1 comparisons (cpu: r2 vs r1): ..."."""
    which = ", ".join(f"{p.group}: {_id(p.diff.b)} vs {_id(p.diff.a)}" for p in blind[:3])
    which += ", ..." if len(blind) > 3 else ""
    first = blind[0].diff
    lead = "" if also else "could not check reproducibility: "
    return (
        f"{lead}nothing to compare in {len(blind)} of {total} comparisons ({which}): "
        f"{first.nothing_compared}; {first.nothing_compared_hint}"
    )


def _id(label: str) -> str:
    """A run's id from its label in a diff: "<id> (cpu)"."""
    return label.split(" ")[0]


def _worst_gap_text(differ: list[Pair]) -> str:
    """How far apart the pairs that differ are: the widest gap, "by up to" where several."""
    how = _gap_text(max(differ, key=lambda p: abs(p.diff.headline or 0.0)).diff)
    return f"by up to {how[3:]}" if len(differ) > 1 and how.startswith("by ") else how


def _unexplained(gap: Pair, pairs: list[Pair], reference: str) -> str | None:
    """Why the gap cannot be named a cause, or None where it can: repeated runs, in the gap's
    group or the group it is measured against, are all identical, or differ by less than a
    NOISE_FACTOR-th of the gap, by the table's primary Δ. Repeats of other code or data are
    no measure of the noise."""
    repeated = [p.diff for p in pairs if p.role == "noise" and p.group in (gap.group, reference)]
    noise = [d for d in repeated if not other_version(d)]
    if not noise:
        return NOT_MEASURED_OTHER if repeated else NOT_MEASURED
    differ = [d for d in noise if d.verdict != "identical"]
    if not differ:
        return None  # repeated runs are bitwise the same: any gap is real
    gap_size = _size(gap.diff)
    unsized = next((d for d in differ if _size(d) is None), None)
    if gap_size is None:  # a NaN or inf of its own: noise only if repeated runs have one too
        return None if unsized is None else f"repeated runs differ {_gap_text(unsized)}"
    if unsized is not None:  # repeated runs part over a NaN or inf: no number to weigh by
        return f"repeated runs differ {_gap_text(unsized)}"
    worst_noise = max(differ, key=lambda d: _size(d) or 0.0)
    largest = _size(worst_noise) or 0.0
    if largest == 0:  # the same final value, different elsewhere: no number to weigh by
        return f"repeated runs differ {_gap_text(worst_noise)}"
    if gap_size > NOISE_FACTOR * largest:
        return None
    return f"repeated runs differ by up to {percent(largest)} in {worst_noise.primary}"


def other_version(d: RunDiff) -> list[Category]:
    """The inputs that make two runs two versions of the experiment (code, data), as the
    diff attributes them: empty where the comparison is a test of reproducibility."""
    found = {c.category for c in _version_changes(d)}
    return [c for c in OTHER_VERSION if c in found]


def _version_changes(d: RunDiff) -> list[InputChange]:
    # The command, which diff files under code, is the experiment itself: runs from elsewhere
    # of another are left out (`comparable`), and every target and variation runs the one
    # toolkit.yaml gives. Files, commits and data are what may change under one command.
    return [c for c in d.inputs if c.category in OTHER_VERSION and c.field != "command"]


def _kinds(pairs: list[Pair]) -> str:
    """What the runs of `pairs` ran other of: "code", "data", "code and data"."""
    found = {c for p in pairs for c in other_version(p.diff)}
    return " and ".join(c for c in OTHER_VERSION if c in found)


def _changes_text(diffs: list[RunDiff]) -> str:
    """Which code and data differ, as `toolkit diff` names them: "code differs: file train.py,
    uncommitted changes"."""
    said = []
    for category in OTHER_VERSION:
        fields = list(
            dict.fromkeys(
                c.field for d in diffs for c in _version_changes(d) if c.category == category
            )
        )
        if fields:
            more = ", ..." if len(fields) > 3 else ""
            said.append(f"{category} differs: {', '.join(fields[:3])}{more}")
    return "; ".join(said)


def _other_gap_text(label: str, reference: str, d: RunDiff) -> str:
    """A gap between runs of other code or data: "cpu on vm ran other code than cpu: differs by
    4.76% in loss (code differs: file train.py)"."""
    ran = f"{label} ran other {' and '.join(other_version(d))} than {reference}"
    if d.verdict == "identical":
        return f"{ran}, and matches it bitwise ({_changes_text([d])})"
    return f"{ran}: differs {_gap_text(d)} ({_changes_text([d])})"


def _other_runs_text(group: Group, other: list[Pair]) -> str:
    """A group's runs of other code or data than its first: no test of reproducibility, and
    how far apart they are all the same: "cpu on vm: its 2 runs ran other code than each other
    (code differs: file train.py), so they are no test of reproducibility: they differ by 4.35%
    in loss"."""
    what, changes = _kinds(other), _changes_text([p.diff for p in other])
    total, count = len(group.runs), len(other)
    if total == 2:
        ran = f"its 2 runs ran other {what} than each other ({changes}), so they are"
    else:
        ran = f"{count} of its {total} runs ran other {what} than its first ({changes}), so "
        ran += "it is" if count == 1 else "they are"
    differ = [p for p in other if p.diff.verdict != "identical"]
    if not differ:
        if total == 2:
            same = "they match bitwise"
        else:
            same = ("it matches" if count == 1 else "they match") + " the first bitwise"
        return f"{group.label}: {ran} no test of reproducibility; {same}"
    how = _worst_gap_text(differ)
    if total == 2:
        which = "they differ"
    elif len(differ) == count:
        which = "it differs" if count == 1 else "they differ"
    else:
        which = f"{len(differ)} of them " + ("differs" if len(differ) == 1 else "differ")
    return f"{group.label}: {ran} no test of reproducibility: {which} {how}"


def _size(d: RunDiff) -> float | None:
    """The table's primary Δ: how far apart the primary metric's final values are; None where no
    number says it (no primary series, or a NaN or inf in one run only)."""
    series = next((m for m in d.metrics if m.name == d.primary), None)
    if series is None or series.first_nonfinite or d.headline is None:
        return None
    return abs(d.headline)


def _values(name: str, values: list[str], on: str) -> str:
    """`workers=0,2`, and the target where variations ran on several: `workers=2 on gpu`."""
    return f"{name}={','.join(values)}" + (f" on {on}" if on else "")


def _gaps_text(gaps: list[RunDiff], why: str) -> str:
    """The gaps that were weighed, as the table shows them: " (the gap is 0.0523%)"."""
    if why in (NOT_MEASURED, NOT_MEASURED_OTHER):
        return ""  # nothing they were weighed against
    shown = [percent(s) if (s := _size(d)) is not None else _gap_text(d) for d in gaps]
    if len(shown) == 1:
        return f" (the gap is {shown[0]})"
    return f" (the gaps are {', '.join(shown)})"


def _succeeded(run: Run) -> bool:
    return run.record.get("status") == "succeeded"


def _run_label(group: Group, index: int) -> str:
    return f"{group.label} #{index + 1}" if len(group.runs) > 1 else group.label


def _gap_text(d: RunDiff) -> str:
    """How far apart two runs are: "by 0.05% in loss, first at step 4"."""
    metric = d.primary or (d.first_divergence[0] if d.first_divergence else "outputs")
    where = f", first at step {d.first_divergence[1]}" if d.first_divergence else ""
    series = next((m for m in d.metrics if m.name == metric), None)
    if series and series.first_nonfinite:  # NaN or inf in one run only: no percentage
        step, a, b = series.first_nonfinite
        if d.first_divergence == (metric, step):
            where = ""
        return f"in {metric}: {a} vs {b} at step {step}{where}"
    if d.headline is None:
        return f"in {metric}{where}"
    if d.headline == 0 and d.verdict != "identical":
        # the same final value: say where they are apart (a metric on the way, an output)
        apart = [
            f"{m.name} on the way" if m.name == metric else m.name
            for m in d.metrics
            if m.verdict != "identical"
        ]
        apart += [o.path for o in d.outputs if o.verdict != "identical"]
        return f"by 0% in final {metric}, apart in {', '.join(apart[:3]) or 'their outputs'}{where}"
    return f"by {percent(abs(d.headline))} in {metric}{where}"


def as_json(report: ReproReport) -> dict[str, Any]:
    """The versioned JSON document of a repro-check."""
    from toolkit.report import diff_json  # report imports this module: import when used

    return {
        "schema": "toolkit.repro-check/1",
        "verdict": report.verdict,
        "summary": report.summary,
        "control": report.control,
        "failed": [
            {
                "group": f.group,
                "label": f.label,
                "run": f.run.id,
                "status": f.status,
                "exit_code": f.exit_code,
            }
            for f in report.failed
        ],
        "groups": [
            {
                "label": g.label,
                "kind": g.kind,
                "target": g.target_name or g.target,
                "variation": g.variation.label if g.variation else None,
                "runs": [r.id for r in g.runs],
            }
            for g in report.groups
        ],
        "pairs": [
            {
                "role": p.role,
                "group": p.group,
                "ran_other": other_version(p.diff),
                **diff_json(p.diff),
            }
            for p in report.pairs
        ],
    }
