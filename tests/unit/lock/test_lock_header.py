"""Lockfile header, inputs hash, requirements.in reading, drift status and portability."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit import lock, piptools
from toolkit.config import Config, parse_config
from toolkit.errors import ConfigError, LockError

YAML = """\
name: demo
python: "3.11"
targets:
  cpu:
    index: {url: "https://download.pytorch.org/whl/cpu", extra_urls: ["https://pypi.org/simple"]}
  gpu: {}
"""


def project(
    tmp_path: Path, yaml: str = YAML, requirements: str | None = "torch==2.13.0\n"
) -> Config:
    (tmp_path / "toolkit.yaml").write_text(yaml)
    if requirements is not None:
        (tmp_path / "requirements.in").write_text(requirements)
    return parse_config(yaml, tmp_path / "toolkit.yaml")


def header(**changes: object) -> lock.LockHeader:
    fields: dict[str, object] = {
        "target": "cpu",
        "python": "3.11",
        "format": lock.FORMAT,
        "inputs": "sha256:" + "a" * 64,
        "requirements": "b" * 12,
        "index": "c" * 12,
    }
    fields.update(changes)
    return lock.LockHeader(**fields)  # type: ignore[arg-type]


def test_header_round_trips_and_tells_people_not_to_edit() -> None:
    text = lock.render_header(header()) + "numpy==2.1.0 \\\n    --hash=sha256:00\n"
    assert lock.parse_header(text) == header()
    assert text.startswith("# toolkit lock: target=cpu python=3.11 format=1 inputs=sha256:")
    assert "do not edit" in text
    assert "toolkit lock --target cpu" in text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "numpy==1.0\n",
        "# toolkit lock: target=cpu\n",
        "# toolkit lock: format=x target=a python=3 inputs=x\n",
    ],
)
def test_a_file_without_a_valid_header_has_none(text: str) -> None:
    assert lock.parse_header(text) is None


def test_read_header_and_lock_hash(tmp_path: Path) -> None:
    path = tmp_path / "cpu.txt"
    assert lock.read_header(path) is None
    path.write_text(lock.render_header(header()) + "six==1.0\n")
    assert lock.read_header(path) == header()
    assert lock.lock_hash(path).startswith("sha256:")
    before = lock.lock_hash(path)
    path.write_text(path.read_text() + "\n")
    assert lock.lock_hash(path) != before


def test_inputs_ignore_comments_blank_lines_and_spacing(tmp_path: Path) -> None:
    cfg = project(tmp_path, requirements="torch==2.13.0\nnumpy>=2,<3\n")
    first = lock.lock_inputs(cfg, cfg.targets["cpu"])
    (tmp_path / "requirements.in").write_text(
        "# the model\ntorch==2.13.0   # pinned\n\n  numpy>=2,<3\n"
    )
    assert lock.lock_inputs(cfg, cfg.targets["cpu"]) == first


def test_inputs_change_with_requirements_index_and_python(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    cpu = lock.lock_inputs(cfg, cfg.targets["cpu"])
    gpu = lock.lock_inputs(cfg, cfg.targets["gpu"])
    assert cpu.requirements == gpu.requirements
    assert cpu.index != gpu.index and cpu.digest != gpu.digest
    other_python = project(tmp_path, YAML.replace('"3.11"', '"3.12"'))
    assert lock.lock_inputs(other_python, other_python.targets["cpu"]).digest != cpu.digest
    (tmp_path / "requirements.in").write_text("torch==2.13.1\n")
    changed = lock.lock_inputs(cfg, cfg.targets["cpu"])
    assert changed.requirements != cpu.requirements and changed.index == cpu.index


def test_inputs_follow_included_files(tmp_path: Path) -> None:
    cfg = project(tmp_path, requirements="-r base.in\ntorch==2.13.0\n")
    (tmp_path / "base.in").write_text("numpy==2.1.0\n")
    before = lock.lock_inputs(cfg, cfg.targets["cpu"])
    (tmp_path / "base.in").write_text("numpy==2.2.0\n")
    assert lock.lock_inputs(cfg, cfg.targets["cpu"]).requirements != before.requirements


def test_mirrors_are_not_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = project(tmp_path)
    before = lock.lock_inputs(cfg, cfg.targets["cpu"])
    monkeypatch.setenv("TOOLKIT_MIRRORS", f"https://download.pytorch.org/whl/cpu={tmp_path}")
    assert lock.lock_inputs(cfg, cfg.targets["cpu"]) == before


def test_missing_requirements_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = project(tmp_path, requirements=None)
    with pytest.raises(ConfigError, match=r"requirements.in: requirements file not found") as err:
        lock.lock_inputs(cfg, cfg.targets["cpu"])
    assert err.value.exit_code == 2


@pytest.mark.parametrize("text", ["", "# nothing yet\n\n", "-r other.in\n"])
def test_a_requirements_file_without_packages_has_inputs_that_list_none(
    tmp_path: Path, text: str
) -> None:
    cfg = project(tmp_path, requirements=text)
    (tmp_path / "other.in").write_text("# empty too\n")
    inputs = lock.lock_inputs(cfg, cfg.targets["cpu"])
    assert not inputs.lists_packages
    assert inputs.digest.startswith("sha256:")
    (tmp_path / "requirements.in").write_text("six\n")
    assert lock.lock_inputs(cfg, cfg.targets["cpu"]).lists_packages


@pytest.mark.parametrize(
    "line",
    ["--extra-index-url https://download.pytorch.org/whl/cu130", "-f /opt/wheels", "--index-url=x"],
)
def test_package_sources_in_requirements_are_refused(tmp_path: Path, line: str) -> None:
    cfg = project(tmp_path, requirements=f"torch==2.13.0\n{line}\n")
    with pytest.raises(ConfigError, match=r"requirements.in:2: .*belong in toolkit.yaml"):
        lock.lock_inputs(cfg, cfg.targets["cpu"])


def test_unknown_target_is_a_config_error(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    assert lock.select_targets(cfg, None) == ["cpu", "gpu"]
    assert lock.select_targets(cfg, ["gpu", "gpu"]) == ["gpu"]
    with pytest.raises(ConfigError, match="unknown target 'tpu'") as err:
        lock.select_targets(cfg, ["tpu"])
    assert err.value.exit_code == 2


def write_lock(
    cfg: Config,
    name: str,
    body: str = "six==1.0 \\\n    --hash=sha256:00\n",
    *,
    with_body_digest: bool = False,
) -> Path:
    """A lockfile as `toolkit lock` writes it, or as it wrote it before the body digest."""
    inputs = lock.lock_inputs(cfg, cfg.targets[name])
    header = lock.LockHeader(
        name,
        inputs.python,
        lock.FORMAT,
        inputs.digest,
        inputs.requirements,
        inputs.index,
        lock.body_digest(body) if with_body_digest else "",
    )
    path = cfg.targets[name].lockfile
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lock.render_header(header) + body)
    return path


def test_status_current_missing_and_stale_with_the_reason(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    assert lock.status(cfg, "cpu").state == "missing"
    write_lock(cfg, "cpu")
    assert lock.status(cfg, "cpu").state == "current"

    (tmp_path / "requirements.in").write_text("torch==2.13.1\n")
    stale = lock.status(cfg, "cpu")
    assert stale.state == "stale"
    assert stale.reason == "requirements.in changed since the lock was written"

    (tmp_path / "requirements.in").write_text("torch==2.13.0\n")
    moved = project(tmp_path, YAML.replace("whl/cpu", "whl/cu130"))
    assert lock.status(moved, "cpu").reason == (
        "targets.cpu.index in toolkit.yaml changed since the lock was written"
    )
    newer = project(tmp_path, YAML.replace('"3.11"', '"3.12"'))
    assert "locked for Python 3.11, toolkit.yaml says 3.12" in lock.status(newer, "cpu").reason


def test_a_stale_lock_names_the_files_requirements_in_includes(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    (tmp_path / "requirements.in").write_text("-r requirements.txt\n")
    (tmp_path / "requirements.txt").write_text("torch==2.13.0\n")
    write_lock(cfg, "cpu")
    (tmp_path / "requirements.txt").write_text("torch==2.13.1\n")
    assert lock.status(cfg, "cpu").reason == (
        "requirements.in or a file it includes (requirements.txt) changed since the lock was "
        "written"
    )


def test_status_of_a_header_without_component_digests_is_generic(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    path = cfg.targets["cpu"].lockfile
    path.parent.mkdir(parents=True)
    path.write_text("# toolkit lock: target=cpu python=3.11 format=1 inputs=sha256:00\n")
    assert lock.status(cfg, "cpu").reason == (
        "requirements.in or index settings changed since the lock was written"
    )
    path.write_text("numpy==1.0\n")
    assert "no toolkit header" in lock.status(cfg, "cpu").reason


def test_check_never_writes(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    report = lock.check(cfg)
    assert not report.ok
    assert [s.state for s in report.statuses] == ["missing", "missing"]
    assert not (tmp_path / "lockfiles").exists()


def sources(tmp_path: Path) -> piptools.Sources:
    return piptools.Sources(
        (piptools.Source("/w", "targets.cpu.index.find_links[0]", "links", str(tmp_path / "w")),)
    )


def test_portable_rewrites_absolute_include_paths(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    body = f"numpy==2.1.0 \\\n    --hash=sha256:00\n    # via -r {tmp_path}/requirements.in\n"
    out = lock._portable(body, cfg, sources(tmp_path), tmp_path / ".toolkit" / "tmp")
    assert out == "numpy==2.1.0 \\\n    --hash=sha256:00\n    # via -r requirements.in\n"


def test_portable_drops_source_options(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    body = "--index-url https://x/simple\n--find-links /opt/w\nsix==1.0\n"
    assert lock._portable(body, cfg, sources(tmp_path), tmp_path) == "six==1.0\n"


@pytest.mark.parametrize("line", ["tiny @ file:///srv/tiny.whl", "    # via {w}/x"])
def test_portable_refuses_machine_paths(tmp_path: Path, line: str) -> None:
    cfg = project(tmp_path)
    body = "six==1.0\n" + line.format(w=tmp_path / "w") + "\n"
    with pytest.raises(LockError, match="path of this machine"):
        lock._portable(body, cfg, sources(tmp_path), tmp_path / ".toolkit")


def test_a_local_source_package_is_refused_with_how_to_lock_it_from_a_wheel(
    tmp_path: Path,
) -> None:
    cfg = project(tmp_path)
    body = f"-e file://{tmp_path}/libs/mylib\n    # via -r requirements.in\nsix==1.0\n"
    with pytest.raises(LockError, match="path of this machine") as err:
        lock._portable(body, cfg, sources(tmp_path), tmp_path / ".toolkit", "gpu")
    # A source folder in find_links makes pip lock an index's package of the same name instead.
    assert err.value.hint == (
        "lock a local package from its wheel, not its source: build it (e.g. `pip wheel "
        "--no-deps -w wheels ./libs/mylib`), put that wheels folder in "
        "targets.gpu.index.find_links, and require the package by name and exact version in "
        "requirements.in (NAME==VERSION)"
    )


def test_a_local_wheel_is_refused_with_its_folder_for_find_links(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    body = "tiny @ file:///srv/wheels/tiny-1.0-py3-none-any.whl\n"
    with pytest.raises(LockError) as err:
        lock._portable(body, cfg, sources(tmp_path), tmp_path / ".toolkit", "cpu")
    assert err.value.hint is not None
    assert err.value.hint.startswith(
        "put the wheel's folder (/srv/wheels) in targets.cpu.index.find_links and require"
    )


def test_an_editable_requirement_alone_is_not_an_empty_file(tmp_path: Path) -> None:
    cfg = project(tmp_path, requirements="-e ./mylib\n")
    assert lock.read_requirements(cfg.requirements, tmp_path) == [
        ("requirements.in", ["-e ./mylib"])
    ]


def test_write_atomic_replaces_whole_file_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "lockfiles" / "cpu.txt"
    lock.write_atomic(path, "one\n")
    assert path.read_text() == "one\n"
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o664)
    lock.write_atomic(path, "two\n")
    assert path.read_text() == "two\n"
    assert path.stat().st_mode & 0o777 == 0o664
    assert sorted(p.name for p in path.parent.iterdir()) == ["cpu.txt"]
