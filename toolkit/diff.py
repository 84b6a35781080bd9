"""Compare two run records: inputs attributed, metrics step by step, outputs tensor by tensor."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from toolkit.compare import (
    METRIC_DEFAULT,
    SeriesDiff,
    TensorFileDiff,
    Tolerance,
    TolerancePolicy,
    Verdict,
    compare_all_series,
    compare_tensor_files,
    deviations,
    worst,
)
from toolkit.config import CompareConfig
from toolkit.errors import UserError
from toolkit.paths import OUTPUTS
from toolkit.record import FACTS

Category = Literal["code", "data", "environment", "hardware", "seed", "settings"]
CATEGORIES: tuple[Category, ...] = ("code", "data", "environment", "hardware", "seed", "settings")
TENSOR_SUFFIXES = (".npy", ".npz", ".safetensors", ".pt", ".pth", ".bin", ".ckpt")
# a diff's verdict: a comparison's, or "not_compared" where neither metrics nor outputs could be
# compared, which is no match: nothing says the results are the same
DiffVerdict = Literal["identical", "within_tolerance", "diverged", "not_compared"]


@dataclass(frozen=True)
class Run:
    """A run record and the folder holding its outputs and logs."""

    record: dict[str, Any]
    folder: Path

    @property
    def id(self) -> str:
        return str(self.record.get("id", self.folder.name))

    @property
    def label(self) -> str:
        native = " native" if self.record.get("native") else ""
        return f"{self.id} ({self.record.get('target', '?')}{native})"


@dataclass(frozen=True)
class InputChange:
    """One input that differs between the runs, and which kind of cause it is."""

    category: Category
    field: str
    a: str
    b: str


@dataclass(frozen=True)
class OutputDiff:
    """One output file: same bytes, different bytes (with a tensor diff if readable), or absent."""

    path: str
    status: Literal["identical", "differs", "only_in_a", "only_in_b"]
    tensors: TensorFileDiff | None
    note: str | None
    verdict: Verdict


@dataclass(frozen=True)
class EarlyEnd:
    """A run that did not succeed and stopped logging before the other: the steps the other run
    logged after it stopped are not a difference in value, and its last value is no final one."""

    side: Literal["A", "B"]
    run: str  # its id
    status: str
    exit_code: int | None
    metrics: tuple[str, ...]  # those the other run logged on past this run's last step
    shown: str  # the one of them the headline counts steps in: this run's longest

    @property
    def other(self) -> Literal["A", "B"]:
        return "B" if self.side == "A" else "A"


@dataclass(frozen=True)
class RunDiff:
    """Everything `toolkit diff` reports, most useful first."""

    a: str
    b: str
    verdict: DiffVerdict
    primary: str | None
    # relative deviation of the primary metric's final value; where a run stopped early, at the
    # last step both logged, and None if they are identical over every step both logged
    headline: float | None
    first_divergence: tuple[str, int] | None  # (metric, step) where values first differ
    warnings: tuple[str, ...]
    inputs: tuple[InputChange, ...]
    metrics: tuple[SeriesDiff, ...]
    outputs: tuple[OutputDiff, ...]
    early_end: EarlyEnd | None = None  # a run that failed or was stopped before the other ended
    # how each run that did not succeed ended, where early_end does not say it: "B failed, exit 1"
    unfinished: tuple[str, ...] = ()
    # where verdict is "not_compared": what each run lacks, and what to do about it
    nothing_compared: str | None = None
    nothing_compared_hint: str | None = None
    outputs_skipped: tuple[str, ...] = ()  # "A", "B": a record without outputs (Ctrl-C)
    no_policy: tuple[str, ...] = ()  # "A", "B": a run with --no-policy (its policy is null)

    def causes(self) -> list[Category]:
        """Input categories that differ, in the order a person checks them."""
        found = {change.category for change in self.inputs}
        return [c for c in CATEGORIES if c in found]


def tolerance_policy(
    cfg: CompareConfig | None, rtol: float | None = None, atol: float | None = None
) -> TolerancePolicy:
    """toolkit.yaml's `compare` tolerances, with --rtol/--atol over them."""
    cfg = cfg or CompareConfig()
    patterns = {pattern: Tolerance(r, a) for pattern, r, a in cfg.tolerances}
    return TolerancePolicy.from_mapping(
        patterns,
        rtol=cfg.rtol if rtol is None else rtol,
        atol=cfg.atol if atol is None else atol,
    )


def diff_runs(a: Run, b: Run, policy: TolerancePolicy | None = None) -> RunDiff:
    """Compare run B against run A."""
    policy = policy or TolerancePolicy()
    ra, rb = a.record, b.record
    warnings = []
    if a.id == b.id:
        warnings.append(f"{a.id} on both sides: a run compared with itself is always identical")
    if ra.get("project") != rb.get("project"):
        warnings.append(
            f"different experiments: {ra.get('project')!r} vs {rb.get('project')!r}"
            "; compared anyway"
        )
    for run in (a, b):
        if run.record.get("status") != "succeeded":
            warnings.append(f"{run.id} did not succeed (status {ended(run.record, quoted=True)})")
        if run.record.get("incomplete"):
            lacking = ", ".join(run.record["incomplete"])
            warnings.append(f"{run.id}'s record has no {lacking}: not compared")
    series_a, series_b = _series(ra), _series(rb)
    metrics = compare_all_series(series_a, series_b, policy)
    warnings += [_nonfinite_warning(m) for m in metrics if m.first_nonfinite]
    outputs = _compare_outputs(a, b, policy, worst(m.verdict for m in metrics))
    primary = ra.get("metrics", {}).get("primary") or rb.get("metrics", {}).get("primary")
    primary_diff = next((m for m in metrics if m.name == primary), None)
    early = _early_end(a, b, metrics)
    cut = early.metrics if early else ()
    headline = primary_diff.final_rel if primary_diff else None  # at the last step both logged
    if primary_diff and primary not in cut and primary_diff.first_unshared_step is not None:
        # two runs that ran to their end, one for longer: its final value is its own last one
        headline = _relative(_last(series_a.get(primary)), _last(series_b.get(primary)))
    firsts = [(s, m.name) for m in metrics if (s := first_difference(m, early)) is not None]
    first = min(firsts) if firsts else None
    if early and first is None:
        headline = None  # the same over every step both logged: no number to give
    # a run that stopped early still diverges: its steps past the stop are only in the other
    verdict: DiffVerdict = worst([m.verdict for m in metrics] + [o.verdict for o in outputs])
    nothing: tuple[str, str] | None = None  # why, and what to do
    if not outputs and not any(m.steps_compared or m.only_in_a or m.only_in_b for m in metrics):
        verdict, nothing = "not_compared", _nothing_compared(ra, rb)
    return RunDiff(
        a=a.label,
        b=b.label,
        verdict=verdict,
        primary=primary,
        headline=headline,
        first_divergence=(first[1], first[0]) if first else None,
        warnings=tuple(warnings),
        inputs=tuple(attribute(ra, rb)),
        metrics=metrics,
        outputs=outputs,
        early_end=early,
        unfinished=tuple(
            f"{side} {ended(run.record)}"
            for side, run in (("A", a), ("B", b))
            if run.record.get("status") != "succeeded" and not (early and early.side == side)
        ),
        outputs_skipped=tuple(
            side
            for side, run in (("A", a), ("B", b))
            if OUTPUTS in (run.record.get("incomplete") or ())
        ),
        nothing_compared=nothing[0] if nothing else None,
        nothing_compared_hint=nothing[1] if nothing else None,
        no_policy=tuple(
            side
            for side, run in (("A", a), ("B", b))
            if "policy" in (run.record.get("determinism") or {})
            and run.record["determinism"]["policy"] is None
        ),
    )


def _nothing_compared(ra: dict[str, Any], rb: dict[str, Any]) -> tuple[str, str]:
    """Why two runs had nothing to compare, naming what each lacks; and what to do."""
    said = {side: _lacks(r) for side, r in (("A", ra), ("B", rb))}
    if all(", no outputs" in text or "skipped" in text for text in said.values()):
        why = "neither run recorded metrics or outputs"
    else:  # one run's outputs, the other's skipped: nothing that both have
        why = "no metrics, and no outputs that both runs recorded"
    each = f"both: {said['A']}" if said["A"] == said["B"] else f"A: {said['A']}; B: {said['B']}"
    todo = []
    if any(OUTPUTS in (r.get("incomplete") or ()) for r in (ra, rb)):
        todo.append("let a run finish writing its record (Ctrl-C there skips hashing its outputs)")
    todo.append(
        "declare what the experiment produces in toolkit.yaml: experiment.outputs (files it "
        "writes) or experiment.metrics (a metrics file, or patterns read from its stdout); where "
        "they are declared, the command wrote none of them"
    )
    plain = each == "both: no metrics, no outputs"  # the headline says it already
    return why if plain else f"{why} ({each})", "; ".join(todo) + "; then run it again"


def _lacks(record: dict[str, Any]) -> str:
    """What a run without metrics recorded of its results: "no metrics, no outputs"."""
    series = record.get("metrics", {}).get("series") or {}
    metrics = "metrics with no steps" if series else "no metrics"
    files = (record.get("outputs") or {}).get("files") or {}
    if OUTPUTS in (record.get("incomplete") or ()):
        outputs = "outputs skipped with Ctrl-C"
    elif files:
        outputs = f"{len(files)} output file{'' if len(files) == 1 else 's'}"
    else:
        outputs = "no outputs"
    return f"{metrics}, {outputs}"


def ended(record: dict[str, Any], *, quoted: bool = False) -> str:
    """How a run ended, from its record: "failed, exit 1", "interrupted"."""
    status, code = record.get("status"), record.get("exit_code")
    text = repr(status) if quoted else str(status)
    return text + (f", exit {code}" if isinstance(code, int) and not isinstance(code, bool) else "")


def _early_end(a: Run, b: Run, metrics: tuple[SeriesDiff, ...]) -> EarlyEnd | None:
    """The run that did not succeed and stopped logging before the other, if one did."""
    sides: tuple[tuple[Literal["A", "B"], Run], ...] = (("A", a), ("B", b))
    found = []
    for side, run in sides:
        if run.record.get("status") == "succeeded":
            continue
        cut = tuple(m for m in metrics if _cut_short(m, side))
        if cut:
            found.append((len(cut), side, run, cut))
    if not found:
        return None
    _, side, run, cut = max(found, key=lambda f: (f[0], f[1]))  # both failed: the shorter one
    code = run.record.get("exit_code")
    return EarlyEnd(
        side=side,
        run=run.id,
        status=str(run.record.get("status")),
        exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        metrics=tuple(m.name for m in cut),
        shown=max(cut, key=lambda m: m.steps_compared).name,  # the first of the longest
    )


def _cut_short(m: SeriesDiff, side: str) -> bool:
    """Whether this side's series of `m` ends before the other's, and holds no step the other
    lacks: every step only the other run logged comes after this side's last one."""
    mine, theirs = (m.only_in_a, m.only_in_b) if side == "A" else (m.only_in_b, m.only_in_a)
    last = m.last_step_a if side == "A" else m.last_step_b
    after = last is None or (m.first_unshared_step is not None and m.first_unshared_step > last)
    return mine == 0 and theirs > 0 and after


def first_difference(m: SeriesDiff, early: EarlyEnd | None) -> int | None:
    """Where `m` first differs; in a series cut short by a run that stopped, only in value."""
    return m.first_differing_step if early and m.name in early.metrics else m.first_difference


def attribute(ra: dict[str, Any], rb: dict[str, Any]) -> list[InputChange]:
    """What differs in the inputs of two records, each change filed under one cause."""
    changes: list[InputChange] = []

    def check(category: Category, field: str, va: Any, vb: Any) -> None:
        if va != vb:
            changes.append(InputChange(category, field, _show(va), _show(vb)))

    # Facts a record lacks (their gathering was skipped with Ctrl-C) are not compared.
    known = set(FACTS) - set(ra.get("incomplete") or ()) - set(rb.get("incomplete") or ())

    def files(category: Category, kind: str, a: dict[str, str], b: dict[str, str]) -> bool:
        """Each file that differs, with its content hash ("absent" where one run lacks it),
        up to 5, those in both runs first; whether any did."""
        differ = sorted(
            (name for name in a.keys() | b.keys() if a.get(name) != b.get(name)),
            key=lambda name: (name not in a or name not in b, name),  # edited ones first
        )
        for name in differ[:5]:
            ha, hb = a.get(name), b.get(name)
            check(
                category, f"{kind} {name}", ha[:12] if ha else "absent", hb[:12] if hb else "absent"
            )
        if len(differ) > 5:
            check(category, f"{kind}s", f"{len(differ)} differ", "5 shown above")
        return bool(differ)

    code_a, code_b = ra.get("code") or {}, rb.get("code") or {}
    if "code" in known and code_a.get("content_sha256") and code_b.get("content_sha256"):
        # by content: a revert, a commit of exactly the uncommitted change, or a commit of
        # data alone is the same code under another commit
        if code_a["content_sha256"] != code_b["content_sha256"]:
            check("code", "git commit", code_a.get("commit"), code_b.get("commit"))
            files_a, files_b = code_a.get("files"), code_b.get("files")
            listed = files_a is not None and files_b is not None  # not over FILES_KEPT files
            if not (listed and files("code", "file", files_a or {}, files_b or {})):
                check("code", "content", code_a["content_sha256"], code_b["content_sha256"])
            # where each run's uncommitted changes are, to read or `git apply`
            check("code", "uncommitted changes", _changes(code_a), _changes(code_b))
    elif "code" in known:  # records of older toolkits
        check("code", "git commit", code_a.get("commit"), code_b.get("commit"))
        check("code", "uncommitted changes", code_a.get("diff_sha256"), code_b.get("diff_sha256"))
    check("code", "command", ra.get("command"), rb.get("command"))

    data_a, data_b = ra.get("data") or {}, rb.get("data") or {}
    data_differ = "data" in known and data_a.get("digest") != data_b.get("digest")
    if data_differ and not files(
        "data", "data file", data_a.get("files", {}), data_b.get("files", {})
    ):
        # the digests differ, the file lists were not kept
        check("data", "data digest", data_a.get("digest"), data_b.get("digest"))

    if "lockfile" in known:
        check("environment", "lockfile", _get(ra, "lockfile.sha256"), _get(rb, "lockfile.sha256"))
    check("environment", "image", _get(ra, "image.id"), _get(rb, "image.id"))
    check("environment", "container", not ra.get("native"), not rb.get("native"))
    if ra.get("python") and rb.get("python"):  # older records have none
        check("environment", "python", ra["python"], rb["python"])
    if ra.get("network") and rb.get("network"):  # nor this
        check("environment", "network", ra["network"], rb["network"])
    if "packages" in known:
        _packages(ra, rb, check)
    # what two native runs inherited from their machines, which the program may read; where
    # each machine and CI job has its own (HOME, a job id), not a cause
    inherited_a, inherited_b = ra.get("host_environment"), rb.get("host_environment")
    if isinstance(inherited_a, dict) and isinstance(inherited_b, dict):
        for name in sorted(inherited_a.keys() | inherited_b.keys()):
            if not _MACHINE_VARIABLE.fullmatch(name):
                check("environment", f"env {name}", inherited_a.get(name), inherited_b.get(name))

    if "host" in known:
        for field in ("cpu_model", "cpu_isa", "machine", "gpu_driver", "cuda_driver"):
            check(
                "hardware",
                field.replace("_", " "),
                _get(ra, f"host.{field}"),
                _get(rb, f"host.{field}"),
            )
        gpus_a = [g.get("name") for g in _get(ra, "host.gpus") or []]
        gpus_b = [g.get("name") for g in _get(rb, "host.gpus") or []]
        check("hardware", "gpus", gpus_a, gpus_b)
    # What one run never reached is not a change of its inputs: torch's devices and CPU kernels
    # where it never imported torch (no `accelerator`), the settings of a library it never
    # imported or, under the same policy, that it has no entry for (see _unreached); and, in a
    # run that ended early (failed, interrupted), what the other reached later.
    early_a, early_b = (r.get("status") not in (None, "succeeded") for r in (ra, rb))

    def reached(va: Any, vb: Any) -> bool:
        return not ((early_a and va in _UNREACHED) or (early_b and vb in _UNREACHED))

    torch_in_both = ra.get("accelerator") is not None and rb.get("accelerator") is not None
    if torch_in_both and reached(_devices(ra) or None, _devices(rb) or None):
        check("hardware", "torch devices", _devices(ra), _devices(rb))
    capability_a = _get(ra, "accelerator.cpu_capability")
    capability_b = _get(rb, "accelerator.cpu_capability")
    same_level = _get(ra, "determinism.policy.cpu") == _get(rb, "determinism.policy.cpu")
    # with another `cpu` level, `cpu: portable` lowered it: that is the setting, not hardware
    if torch_in_both and same_level and reached(capability_a, capability_b):
        check("hardware", "torch cpu capability", capability_a, capability_b)

    check("seed", "seed", _get(ra, "determinism.policy.seed"), _get(rb, "determinism.policy.seed"))

    check("settings", "target", ra.get("target"), rb.get("target"))
    # what toolkit.yaml declared the run's products to be: another declaration hashes or reads
    # other files (records of older toolkits have none)
    for field, path in (
        ("declared outputs", "outputs.declared"),
        ("metrics file", "metrics.file"),  # null: none declared
        ("metrics patterns", "metrics.patterns"),
    ):
        parent, key = path.rsplit(".", 1)
        in_a, in_b = (_get(r, parent) or {} for r in (ra, rb))
        if key in in_a and key in in_b:  # an older record lacks what it never kept
            va, vb = in_a[key], in_b[key]
            # the same outputs, declared in another order or spelt another way, are the same
            if _same_paths(va) != _same_paths(vb):
                check("settings", field, _declared(va), _declared(vb))
    policy_a = dict(_get(ra, "determinism.policy") or {})
    policy_b = dict(_get(rb, "determinism.policy") or {})
    for key in sorted((policy_a.keys() | policy_b.keys()) - {"seed"}):
        check("settings", key.replace("_", " "), policy_a.get(key), policy_b.get(key))
    applied_a = _applied(ra)
    applied_b = _applied(rb)
    # a setting one run's policy does not apply (cpu fixed vs portable), or one a run of
    # another toolkit version, or one that never started, has no entry for
    same_toolkit = ra.get("toolkit_version") == rb.get("toolkit_version")
    missing = "not set" if same_toolkit else "not recorded"
    # under the same policy and toolkit, no policy left it out: the run never reached it
    lacking = same_toolkit and _get(ra, "determinism.policy") == _get(rb, "determinism.policy")
    for key in sorted(applied_a.keys() | applied_b.keys()):
        va, vb = applied_a.get(key, missing), applied_b.get(key, missing)
        unreached = _unreached(applied_a, key, lacking) or _unreached(applied_b, key, lacking)
        if not unreached and reached(va, vb):
            check("settings", key, va, vb)
    # what the program set itself after the policy (torch.set_num_threads(8) in its own code)
    set_a, set_b = _overridden(ra), _overridden(rb)
    for key in sorted(set_a.keys() | set_b.keys()):
        unchanged = "as the policy set it"
        check(
            "settings",
            f"{key}, set by the program",
            set_a.get(key, unchanged),
            set_b.get(key, unchanged),
        )
    return changes


def _same_paths(value: Any) -> Any:
    """Declared paths as the files they name (`./out/` and `out` are one folder); a file name
    or patterns as they are."""
    if not isinstance(value, list):
        return value
    return sorted({os.path.normpath(str(path)) for path in value})


def _declared(value: Any) -> str:
    """Paths or patterns as toolkit.yaml gives them: "out/, model.pt", "loss: loss=(\\S+)"."""
    if isinstance(value, dict):
        value = [f"{name}: {pattern}" for name, pattern in value.items()]
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return "none" if value is None else str(value)


def _compare_outputs(
    a: Run, b: Run, policy: TolerancePolicy, metrics_verdict: Verdict
) -> tuple[OutputDiff, ...]:
    if "outputs" in {*(a.record.get("incomplete") or ()), *(b.record.get("incomplete") or ())}:
        return ()  # not hashed (skipped with Ctrl-C): diff_runs warns
    files_a = (a.record.get("outputs") or {}).get("files", {})
    files_b = (b.record.get("outputs") or {}).get("files", {})
    metrics_files = {_get(r.record, "metrics.file") for r in (a, b)} - {None}
    found = []
    for path in sorted(files_a.keys() | files_b.keys()):
        if path in metrics_files and path in files_a and path in files_b:
            # the metrics file was read into series and compared step by step, with tolerances
            same = files_a[path] == files_b[path]
            found.append(
                OutputDiff(
                    path,
                    "identical" if same else "differs",
                    None,
                    None if same else "compared as metric series (see metrics)",
                    "identical" if same else metrics_verdict,
                )
            )
        elif path not in files_b:
            found.append(OutputDiff(path, "only_in_a", None, None, "diverged"))
        elif path not in files_a:
            found.append(OutputDiff(path, "only_in_b", None, None, "diverged"))
        elif files_a[path] == files_b[path]:
            found.append(OutputDiff(path, "identical", None, None, "identical"))
        else:
            found.append(_compare_file(a, b, path, policy))
    return tuple(found)


def _compare_file(a: Run, b: Run, path: str, policy: TolerancePolicy) -> OutputDiff:
    file_a, file_b = a.folder / OUTPUTS / path, b.folder / OUTPUTS / path
    if not path.endswith(TENSOR_SUFFIXES):
        return OutputDiff(path, "differs", None, "bytes differ (not a tensor file)", "diverged")
    if not (file_a.is_file() and file_b.is_file()):
        return OutputDiff(path, "differs", None, "hashes differ; files not present", "diverged")
    try:
        tensors = compare_tensor_files(file_a, file_b, policy)
    except UserError as exc:
        return OutputDiff(path, "differs", None, exc.message, "diverged")
    return OutputDiff(path, "differs", tensors, None, tensors.verdict)


def _series(record: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    raw = record.get("metrics", {}).get("series", {})
    return {name: [(int(s), float(v)) for s, v in points] for name, points in raw.items()}


def _nonfinite_warning(m: SeriesDiff) -> str:
    assert m.first_nonfinite is not None
    step, a, b = m.first_nonfinite
    counts = [
        f"{what} at {n} step{'s' if n > 1 else ''}"
        for what, n in (
            ("NaN in one run only", m.nan_mismatches),
            ("unmatched infinities", m.inf_mismatches),
        )
        if n
    ]
    return (
        f"{m.name} is {a} in A but {b} in B at step {step} ({', '.join(counts)}); "
        "max abs/rel count only steps where both values are finite"
    )


_MACHINE_VARIABLE = re.compile(
    r"HOME|USER|LOGNAME|HOSTNAME|PATH|TMPDIR|MOTD_SHOWN|LESS\w*|PAGER|EDITOR|VISUAL"
    r"|(?:GITHUB|RUNNER|CI|GITLAB|BUILDKITE|JENKINS|BUILD|JOB)_\w*|CI"
    r"|(?:SLURM|SLURMD|PBS|LSB|SGE|PMI|PMIX|OMPI)_\w*"  # a cluster job's own, set per job
)
_UNREACHED = (None, "not set", "not recorded", "not applicable")  # what a run never got to


def _packages(
    ra: dict[str, Any], rb: dict[str, Any], check: Callable[[Category, str, Any, Any], None]
) -> None:
    """Packages that differ: those the runs imported first, then other version changes; many
    in one environment only (a native venv's dev tools) are one line each side."""
    from toolkit.wheelhouse import normalise  # a distribution's name as an import name matches

    a, b = ra.get("packages") or {}, rb.get("packages") or {}
    imported = {normalise(name) for r in (ra, rb) for name in (r.get("libraries") or {})}
    differ = [name for name in a.keys() | b.keys() if a.get(name) != b.get(name)]
    for name in sorted(
        differ, key=lambda n: (normalise(n) not in imported, n not in a or n not in b, n.lower())
    ):
        one_sided = name not in a or name not in b
        if not one_sided or normalise(name) in imported:
            check("environment", f"package {name}", a.get(name), b.get(name))
    for side, mine, other in (("A", a, b), ("B", b, a)):
        alone = sorted(
            (n for n in mine.keys() - other.keys() if normalise(n) not in imported), key=str.lower
        )
        if len(alone) > 3:
            shown = ", ".join(f"{n} {mine[n]}" for n in alone[:6]) + (
                ", ..." if len(alone) > 6 else ""
            )
            value = f"{len(alone)}: {shown}"
            check(
                "environment",
                f"packages only in {side}",
                *((value, None) if side == "A" else (None, value)),
            )
        else:
            for name in alone:
                check("environment", f"package {name}", a.get(name), b.get(name))


def _changes(code: dict[str, Any]) -> str:
    """A run's uncommitted changes: "none", or the file its run folder keeps them in."""
    if not code.get("dirty"):
        return "none"
    digest = str(code.get("diff_sha256") or "")[:12]
    return f"{code['patch']} in its run folder ({digest})" if code.get("patch") else digest


def _applied(record: dict[str, Any]) -> dict[str, str]:
    """Each setting the runtime applied, in words: "2 (applied)", "not applicable"."""
    applied = _get(record, "determinism.applied") or []
    return {
        str(entry.get("name")): _setting(entry.get("value"), entry.get("status"))
        for entry in applied
        if isinstance(entry, dict)
    }


def _unreached(applied: dict[str, str], key: str, lacking: bool) -> bool:
    """Whether a run never reached setting `key`: not applicable, one of a library it never
    imported (`numpy: not applicable` stands for `numpy.random.seed`), or, where `lacking`
    says no policy left it out, one it has no entry for (torch's compiler never loaded)."""
    value = applied.get(key, applied.get(key.split(".")[0]))
    return value == "not applicable" or (value is None and lacking)


def _overridden(record: dict[str, Any]) -> dict[str, str]:
    entries = _get(record, "determinism.overridden") or []
    return {str(e.get("name")): _show(e.get("found")) for e in entries if isinstance(e, dict)}


def _setting(value: Any, status: Any) -> str:
    if status == "not_applicable":
        return "not applicable"
    return f"{_show(value)} ({str(status).replace('_', ' ')})"


def _devices(record: dict[str, Any]) -> str | None:
    """The GPUs torch saw, by name and compute capability; None where it saw none."""
    devices = _get(record, "accelerator.devices") or []
    names = [f"{d.get('name')} ({d.get('capability')})" for d in devices if isinstance(d, dict)]
    return ", ".join(names) or None


def _get(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def percent(rel: float) -> str:
    """A relative difference as reports show it: "0%", "0.0689%"."""
    if rel == 0:
        return "0%"
    return f"{rel * 100:.3g}%"


def _last(points: list[tuple[int, float]] | None) -> float | None:
    """The value at the last step a run logged (a repeated step keeps its last value)."""
    by_step = dict(points or ())
    return by_step[max(by_step)] if by_step else None


def _relative(a: float | None, b: float | None) -> float | None:
    """How far apart two final values are, as a series' final_rel says it (NaN and NaN agree;
    None for a NaN or inf against another value)."""
    if a is None or b is None:
        return None
    dev = deviations(np.array([a]), np.array([b]), METRIC_DEFAULT)
    return float(dev.rel[0]) if dev.within[0] or dev.finite[0] else None


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)
