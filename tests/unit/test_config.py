"""toolkit.yaml parsing: valid documents, defaults, and errors that name file, key and value."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.config import (
    BaseConfig,
    CompareConfig,
    DeterminismConfig,
    ExperimentConfig,
    load_config,
    parse_config,
)
from toolkit.errors import ConfigError

FILE = Path("/proj/toolkit.yaml")

FULL = """
name: example
python: "3.11"
requirements: requirements.in
base: {suite: bookworm, snapshot: "20261101T000000Z"}
targets:
  cpu:
    lockfile: lockfiles/cpu.txt
    index: {url: "https://download.pytorch.org/whl/cpu", extra_urls: ["https://pypi.org/simple"]}
  gpu:
    base: "python:3.11-slim@sha256:%s"
    gpus: all
experiment:
  command: python train.py --epochs 2
  workdir: examples/quickstart
  data: [data/]
  outputs: [checkpoints/]
  metrics: {file: metrics.jsonl, primary: val_loss, patterns: {loss: "loss=([0-9.]+)"}}
  network: false
determinism: {seed: 3, threads: 2, dataloader_workers: 1, strict: false, cpu: portable}
compare:
  rtol: 1e-5
  tolerances:
    "val_*": {rtol: 0.001, atol: 0}
""" % ("a" * 64)


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_config(text, FILE)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.exit_code == 2
    hint = f" ({info.value.hint})" if info.value.hint else ""
    return info.value.message + hint


def test_full_document() -> None:
    cfg = parse(FULL)
    assert cfg.name == "example"
    assert cfg.requirements == Path("/proj/requirements.in")
    assert (
        cfg.base.effective_mirror == "https://snapshot.debian.org/archive/debian/20261101T000000Z/"
    )
    assert list(cfg.targets) == ["cpu", "gpu"]
    cpu, gpu = cfg.targets["cpu"], cfg.targets["gpu"]
    assert cpu.lockfile == Path("/proj/lockfiles/cpu.txt")
    assert cpu.index.extra_urls == ("https://pypi.org/simple",)
    assert cpu.gpus is None and cpu.base == "debian"
    assert gpu.lockfile == Path("/proj/lockfiles/gpu.txt")  # default path from the target name
    assert gpu.gpus == "all" and gpu.base_is_pinned
    assert cfg.experiment is not None
    assert cfg.experiment.metrics.patterns == (("loss", "loss=([0-9.]+)"),)
    assert cfg.experiment.network is False
    assert cfg.determinism == DeterminismConfig(
        seed=3, threads=2, dataloader_workers=1, strict=False, cpu="portable"
    )
    assert cfg.compare == CompareConfig(rtol=1e-5, atol=None, tolerances=(("val_*", 0.001, 0.0),))


def test_defaults() -> None:
    cfg = parse("name: demo\ntargets: {cpu: {}}\n")
    assert cfg.python == "3.11"
    assert cfg.base == BaseConfig()
    assert cfg.determinism == DeterminismConfig()
    assert cfg.experiment is None
    assert parse("name: d\ntargets: {cpu: {}}\nexperiment: {command: a}").experiment == (
        ExperimentConfig(command="a", network=True)  # as before the option existed
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "name: required key is missing"),
        ("name: Bad Name\ntargets: {cpu: {}}", "name: expected a lowercase name"),
        ("name: x\ntargets: {}", "targets: expected at least one target"),
        ("name: x\ntargets: {cpu: {}}\nexperimnt: {command: a}", "did you mean 'experiment'?"),
        ("name: x\ntargets: {cpu: {lockfle: a.txt}}", "targets.cpu.lockfle: unknown key"),
        ("name: x\ntargets: {cpu: {gpus: true}}", 'targets.cpu.gpus: expected "all"'),
        ("name: x\npython: 3.11\ntargets: {cpu: {}}", "python: expected a quoted version"),
        ("name: x\ntargets: {cpu: {}}\ndeterminism: {threads: 0}", "from 1 to 1024, got 0"),
        ("name: x\ntargets: {cpu: {}}\ndeterminism: {cpu: fast}", "'fixed' or 'portable'"),
        (
            "name: x\ntargets: {cpu: {}}\nexperiment: {command: a, data: [../x]}",
            "inside the project",
        ),
        ("name: x\ntargets: {cpu: {}}\nexperiment: {outputs: [o]}", "experiment.command: required"),
        (
            "name: x\ntargets: {cpu: {}}\nexperiment: {command: a, network: none}",
            "experiment.network: expected true or false",
        ),
        (
            "name: x\ntargets: {cpu: {index: {url: ftp://x}}}",
            "targets.cpu.index.url: expected a URL",
        ),
        ("name: x\ntargets: [cpu]", "targets: expected a mapping"),
        ("name: [x", "not valid YAML"),
        ("- a\n- b", "top level: expected a mapping"),
        (
            "name: x\ntargets: {cpu: {}}\nexperiment: {command: a, metrics: {patterns: {l: 'x'}}}",
            "experiment.metrics.patterns.l: expected a regex with one capturing group",
        ),
    ],
)
def test_errors_name_the_key_and_expectation(text: str, expected: str) -> None:
    message = error_of(text)
    assert message.startswith(str(FILE))
    assert expected in message


def with_patterns(patterns: str) -> str:
    """A toolkit.yaml whose experiment.metrics.patterns is `patterns`, as YAML."""
    experiment = f"experiment: {{command: a, metrics: {{patterns: {patterns}}}}}"
    return f"name: x\ntargets: {{cpu: {{}}}}\n{experiment}"


PATTERN_KEY = f"{FILE}: experiment.metrics.patterns"
ONE_GROUP = "expected a regex with one capturing group (the number)"
EXAMPLE = r"e.g. loss: 'loss=([^\s,;]+)'"


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        (  # group 1 is "loss" or "lr", never a number: nothing would be read
            r"{step: 'step (\d+)', loss: '(loss|lr)=([0-9.]+)'}",
            f"{PATTERN_KEY}.loss: {ONE_GROUP}, got '(loss|lr)=([0-9.]+)', which has 2 (a pattern "
            f"reads one metric: give each metric its own, {EXAMPLE}, and write any other group "
            "as (?:...), which captures nothing)",
        ),
        (
            r"{loss: 'loss=[0-9.]+'}",
            f"{PATTERN_KEY}.loss: {ONE_GROUP}, got 'loss=[0-9.]+', which has none "
            f"(put the number in parentheses, {EXAMPLE})",
        ),
        (
            r"{acc: 'acc=([0-9.]+'}",
            f"{PATTERN_KEY}.acc: {ONE_GROUP}, got 'acc=([0-9.]+', which is not a regex: "
            "missing ), unterminated subpattern at position 4 "
            f"(write it in Python's regex syntax, {EXAMPLE})",
        ),
        (
            r"{loss: 'x{99999999999}(\d)'}",
            f"{PATTERN_KEY}.loss: {ONE_GROUP}, got 'x{{99999999999}}(\\d)', which is not a regex: "
            f"the repetition number is too large (write it in Python's regex syntax, {EXAMPLE})",
        ),
        ("{loss: 5}", f"{PATTERN_KEY}.loss: {ONE_GROUP}, got 5 ({EXAMPLE})"),
        (
            "[loss]",
            f"{PATTERN_KEY}: expected a mapping of metric name to regex, {EXAMPLE}, got ['loss']",
        ),
    ],
)
def test_a_pattern_must_capture_the_number_in_its_one_group(patterns: str, message: str) -> None:
    assert error_of(with_patterns(patterns)) == message


def test_patterns_with_one_capturing_group_are_taken_as_written() -> None:
    patterns = (
        r"{step: 'step (\d+)', loss: '(?:loss|train_loss)=([^\s,;]+)', lr: 'it''s (?P<lr>\S+)'}"
    )
    cfg = parse(with_patterns(patterns))
    assert cfg.experiment is not None
    assert cfg.experiment.metrics.patterns == (
        ("step", r"step (\d+)"),
        ("loss", r"(?:loss|train_loss)=([^\s,;]+)"),
        ("lr", r"it's (?P<lr>\S+)"),
    )


def test_unknown_target_suggests_a_known_one() -> None:
    cfg = parse("name: x\ntargets: {cpu: {}, gpu: {}}")
    with pytest.raises(ConfigError) as info:
        cfg.target("cpx")
    assert "unknown target 'cpx'" in info.value.message
    assert info.value.hint == "did you mean 'cpu'?"


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "targets",
                    "cpu",
                    "gpu",
                    "index",
                    "url",
                    "experiment",
                    "command",
                    "determinism",
                    "threads",
                    "metrics",
                    "patterns",
                    "base",
                    "suite",
                    "data",
                    "x",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(yaml_values)
def test_arbitrary_documents_never_crash(document: object) -> None:
    text = yaml.safe_dump(document)
    try:
        parse(text)
    except ConfigError as exc:
        assert exc.message.startswith(str(FILE))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_never_crashes(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse(text)


def test_resolved_config_is_itself_a_valid_toolkit_yaml() -> None:
    from toolkit.config import resolved

    cfg = parse(FULL)
    again = parse_config(yaml.safe_dump(resolved(cfg)), FILE)
    assert again == cfg
    minimal = parse("name: demo\ntargets: {cpu: {}}\n")
    assert parse_config(yaml.safe_dump(resolved(minimal)), FILE) == minimal


def test_parsed_document_is_cached_by_the_texts_hash(tmp_path: Path) -> None:
    path = tmp_path / "toolkit.yaml"
    path.write_text("name: demo\ntargets: {cpu: {}}\n")
    (tmp_path / ".toolkit").mkdir()
    cache = tmp_path / ".toolkit" / "config.json"
    assert load_config(path).name == "demo"
    assert json.loads(cache.read_text())["document"]["name"] == "demo"

    path.write_text("name: other\ntargets: {cpu: {}}\n")  # a changed text is parsed again
    assert load_config(path).name == "other"
    cache.write_text("[not, a, cache")  # a damaged cache is ignored, then replaced
    assert load_config(path).name == "other"
    assert json.loads(cache.read_text())["document"]["name"] == "other"


def test_a_document_json_cannot_hold_is_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "toolkit.yaml"
    path.write_text("name: demo\ntargets: {cpu: {}}\n1: numeric key\n")
    (tmp_path / ".toolkit").mkdir()
    with pytest.raises(ConfigError):
        load_config(path)
    assert not (tmp_path / ".toolkit" / "config.json").exists()
    with pytest.raises(ConfigError):  # the same error on the next load: not a cached "1"
        load_config(path)


def test_data_and_outputs_are_not_code_but_the_workdir_always_is() -> None:
    from toolkit.config import ExperimentConfig, MetricsConfig

    exp = ExperimentConfig(
        command="python train.py",
        workdir="exp",
        data=("data/", ".", "..", "../shared"),
        outputs=("ckpt/",),
        metrics=MetricsConfig(file="metrics.jsonl"),
    )
    # `.` is the workdir itself and `..` holds it: leaving either out would hide train.py
    assert exp.not_code() == ("exp/data", "shared", "exp/ckpt", "exp/metrics.jsonl")


def test_toolkit_yaml_requirements_and_lockfiles_are_not_code() -> None:
    """A record keeps them as command, policy and environment: a seed set in toolkit.yaml is
    a seed change, not a code change as well."""
    cfg = parse(FULL)
    assert cfg.not_code()[-4:] == (
        "toolkit.yaml",
        "requirements.in",
        "lockfiles/cpu.txt",
        "lockfiles/gpu.txt",
    )
    assert cfg.not_code()[:2] == ("examples/quickstart/data", "examples/quickstart/checkpoints")


def test_an_unknown_target_lists_the_targets_once(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: x\ntargets: {cpu: {}, gpu: {}}\n")
    cfg = load_config(tmp_path / "toolkit.yaml")
    with pytest.raises(ConfigError) as far:
        cfg.target("xyzzy")
    assert far.value.message.endswith("unknown target 'xyzzy' (targets: cpu, gpu)")
    assert far.value.hint is None
    with pytest.raises(ConfigError) as near:
        cfg.target("gpv")
    assert near.value.hint == "did you mean 'gpu'?"
