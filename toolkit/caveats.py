"""What a run is warned of as it ends: where its record says less than it seems to. Said on
the terminal, and kept in the record (`warnings`)."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import facts, outcome, outputs
from toolkit.config import Config, ExperimentConfig
from toolkit.paths import OUTPUTS

if TYPE_CHECKING:
    from toolkit import metrics


def of(
    cfg: Config, doc: dict[str, Any], metrics_files: Mapping[str, metrics.Parsed], run_dir: Path
) -> list[str]:
    """Where the record of a run that has ended says less than it seems to: inputs it cannot
    see, an environment that is not the one declared, metrics it could not read, outputs the
    run did not write. `doc`: the record (but its warnings)."""
    from toolkit import metrics

    data = doc.get("data") or {}
    found = [
        f"experiment.data {path!r} does not exist, so it is not in the record's data "
        "fingerprint and a change to it goes unseen: is the path in toolkit.yaml right?"
        for path in data.get("missing", [])
    ]
    exp = cfg.experiment
    if exp is not None and not doc["native"]:
        found += _out_of_the_containers_sight(cfg.root, exp, data.get("missing", []))
    changed = data.get("changed") or []
    if changed:
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        found.append(
            f"the run changed its data while it ran ({shown}: changed, new or removed), so the "
            "record's data fingerprint may hold them as they were before or after, and the next "
            "run reads other data: write what the run makes to its outputs, not into "
            "experiment.data (the record lists them under data.changed)"
        )
    lockfile = doc.get("lockfile") or {}
    if lockfile.get("state") == "stale":
        used = (
            "the record's package drift is measured against the old lock"
            if doc["native"]
            else "this run used the packages of the old lock"
        )
        after = "" if doc["native"] else ", then `toolkit build`"
        found.append(
            f"lockfile {lockfile['path']}: {lockfile['reason']}, so {used}: run "
            f"`toolkit lock --target {doc['target']}`{after}"
        )
    skipping = _runtime_skipped(doc["command"])
    if skipping:
        found.append(
            f"the command runs Python with {skipping}, which skips toolkit's runtime (PYTHONPATH "
            "and sitecustomize), so that process applied and recorded no determinism setting: "
            "run it without it"
        )
    elif doc["status"] == "succeeded" and not doc["processes"]:
        found.append(
            "no Python process of this run loaded toolkit's runtime, so no determinism setting "
            "was applied or recorded: if the experiment runs Python, the command replaced "
            "PYTHONPATH, whose first entry toolkit sets (extend it: PYTHONPATH=src:$PYTHONPATH), "
            "or Python ignored it (python -I or -E)"
        )
    if lockfile.get("state") == "missing" and doc["native"]:
        found.append(
            f"no lockfile {lockfile['path']}, so the record cannot tell whether the installed "
            f"packages are the ones the project pins: run `toolkit lock --target {doc['target']}`"
        )
    code = doc.get("code")
    if code is not None and code.get("commit") is None:
        found.append(
            "the project is not in a git repository with a commit, so the record cannot tell "
            "one version of the code from another: `git init` and commit it"
        )
    python = doc.get("python")
    if python and not python.startswith(f"{cfg.python}."):
        found.append(f"the experiment ran on Python {python}; toolkit.yaml says {cfg.python}")
    drift = doc.get("package_drift") or []
    if drift:
        shown = ", ".join(facts.drift_text(d) for d in drift[:5])
        more = f" and {len(drift) - 5} more" if len(drift) > 5 else ""
        packages = "1 package differs" if len(drift) == 1 else f"{len(drift)} packages differ"
        found.append(
            f"{packages} from the lockfile: {shown}{more} "
            "(all of them in the record's package_drift)"
        )
    overridden = (doc.get("determinism") or {}).get("overridden") or []
    if overridden:
        changes = ", ".join(
            f"{o['name']} {_short(o.get('policy'))} -> {_short(o.get('found'))}" for o in overridden
        )
        found.append(
            f"the program changed settings after toolkit applied them: {changes}; its results "
            "depend on them (the record has them under determinism.overridden)"
        )
    forced = (doc.get("determinism") or {}).get("forced") or []
    dropped = [f for f in forced if f.startswith("DataLoader worker_init_fn")]
    for change in dropped if doc["status"] == "failed" else ():  # most only seed: no news
        found.append(
            f"{change}: the loader ran in the main process, where torch never calls it; if the "
            "failure comes from that (a file it opens), set the policy's dataloader_workers "
            "(or --workers) to the loader's count"
        )
    target = cfg.targets.get(doc["target"])
    accelerator = doc.get("accelerator")
    if (
        doc["native"]
        and target is not None
        and target.gpus
        and isinstance(accelerator, dict)
        and not accelerator.get("devices")
    ):
        found.append(
            f"target {doc['target']} is for GPUs, but torch saw no GPU in this run: it ran on "
            "the CPU, so its results are a CPU run's (is this a GPU machine? `toolkit doctor`)"
        )
    if doc["native"] and exp is not None and not exp.network:
        found.append(
            "experiment.network is false, but a native run has this machine's network: what "
            "the experiment downloads is not in the record (the record says network: host)"
        )
    workdir = cfg.root / exp.workdir if exp is not None else cfg.root
    files = [
        rel
        for rel in (exp.declared_outputs() if exp is not None else ())
        if not outputs.is_folder(rel, workdir)
    ]
    if (
        files
        and not doc["native"]
        and doc["status"] == "failed"
        and outcome.replaced_a_mount(run_dir)
    ):
        found.append(
            f"the run's output says 'Device or resource busy': a declared output file "
            f"({', '.join(files)}) is bound into the container, where it can be written but not "
            "replaced by a rename (a save to a temporary file, then os.replace): declare the "
            "folder it is saved in instead"
        )
    offline = (
        outcome.offline_failure(run_dir)
        if doc["network"] == "none" and doc["status"] == "failed"
        else None
    )
    if offline:
        found.append(
            f"the run has no network (experiment.network: false in toolkit.yaml) and its output "
            f"says {offline!r}: put what it downloads in the project and list it in "
            "experiment.data (its content is then in the record), or set experiment.network: "
            "true (what it downloads is then not in the record)"
        )
    own = exp is None or doc["command"] != shlex.split(exp.command)
    if exp is not None and not own and doc["status"] == "succeeded" and doc["outputs"]:
        unwritten = outputs.unwritten(run_dir / OUTPUTS, exp.outputs)
        if unwritten:
            found.append(
                f"the run wrote nothing in {', '.join(unwritten)} (experiment.outputs), so the "
                "record holds no output there: are the paths right? (relative to "
                f"experiment.workdir, {exp.workdir})"
            )
    if doc["status"] == "succeeded":  # a stopped run's torn last line is no news
        # a command of one's own (`toolkit run -- CMD`) that logs no metric at all is no
        # news either: the primary metric is the experiment's
        quiet = own and not (doc["metrics"] or {}).get("series")
        found += metrics.run_warnings(metrics_files, doc["metrics"], primary=not quiet)
    return found


def _out_of_the_containers_sight(
    root: Path, exp: ExperimentConfig, missing: list[str]
) -> list[str]:
    """The data a container run could not read though its record has its fingerprint: linked
    from outside the project (the container sees the project alone), or inside a declared
    output (the container sees the run's own, empty, outputs folder there)."""
    found = []
    outside = []
    for rel in (r for r in exp.data if r not in missing):
        try:
            linked = not (root / exp.workdir / rel).resolve().is_relative_to(root.resolve())
        except (OSError, RuntimeError):  # a link to itself: missing, said above
            linked = False
        if linked:
            outside.append(rel)
    if outside:
        found.append(
            f"experiment.data {', '.join(outside)} links outside the project, which is all the "
            "container sees of this machine: the record has its fingerprint, but the run could "
            "not read it; copy it into the project, or run with --native"
        )
    workdir = root / exp.workdir
    folders = [os.path.normpath(o) for o in exp.outputs if outputs.is_folder(o, workdir)]
    hidden = [
        rel
        for rel in exp.data
        if any(Path(os.path.normpath(rel)).is_relative_to(out) for out in folders)
    ]
    if hidden:
        found.append(
            f"experiment.data {', '.join(hidden)} lies in a declared output folder, which the "
            "container sees as this run's own, empty, outputs: the record has its fingerprint, "
            "but the run could not read it; keep such data out of experiment.outputs"
        )
    return found


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."  # an unreadable flag's long error


def _runtime_skipped(command: list[str]) -> str | None:
    """The interpreter option (-I, -S or -E) with which a `python ...` command skips the
    runtime, or None."""
    words = iter(command)
    for program in words:  # `env A=1 python ...` runs python too
        if Path(program).name != "env" and "=" not in program:
            break
    else:
        return None
    if not facts.is_python(program):
        return None
    for word in words:
        if not word.startswith("-") or word.startswith("--") or word == "-":
            return None  # the script: what follows are its own arguments
        for at, letter in enumerate(word[1:], start=2):
            if letter in "ISE":
                return f"-{letter}"
            if letter in "cm":  # -c CODE, -m MODULE: the rest is the program's
                return None
            if letter in "WX":  # takes a value: the rest of the word, or the next word
                if at == len(word):
                    next(words, None)
                break
    return None
