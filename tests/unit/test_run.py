"""`toolkit run`'s own bookkeeping, without an engine: what is left when a run never starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from toolkit import caveats, run
from toolkit.config import Config, load_config
from toolkit.errors import ConfigError


def test_ctrl_c_before_the_experiment_starts_leaves_no_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "toolkit.yaml").write_text(
        f"name: t\ntargets: {{cpu: {{}}}}\nexperiment: {{command: {sys.executable} -V}}\n"
    )
    cfg = load_config(tmp_path / "toolkit.yaml")
    req = run.request(cfg, "cpu", None, native=True)

    def ctrl_c(*args: object) -> Path:
        raise KeyboardInterrupt  # pressed while the run is being set up

    monkeypatch.setattr(run, "runtime_bundle", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run.execute(cfg, req, on_stdout=lambda chunk: None, on_stderr=lambda chunk: None)
    assert list((tmp_path / "runs").iterdir()) == []


@pytest.mark.parametrize("seed", [-5, 2**32])
def test_a_seed_toolkit_yaml_would_refuse_is_refused_on_the_command_line_too(
    tmp_path: Path, seed: int
) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: t\ntargets: {cpu: {}}\n")
    cfg = load_config(tmp_path / "toolkit.yaml")
    with pytest.raises(ConfigError, match="--seed must be an integer from 0 to 4294967295"):
        run.request(cfg, "cpu", ["python"], seed=seed)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [({"seed": 5}, "--seed"), ({"threads": 1, "cpu": "portable"}, "--threads, --cpu"),
     ({"strict": False}, "--no-strict")],
)  # fmt: skip
def test_no_policy_with_a_policy_option_says_the_option_would_do_nothing(
    tmp_path: Path, overrides: dict[str, object], named: str
) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: t\ntargets: {cpu: {}}\n")
    cfg = load_config(tmp_path / "toolkit.yaml")
    with pytest.raises(ConfigError, match=f"libraries' defaults: {named} would have no effect"):
        run.request(cfg, "cpu", ["python"], apply_policy=False, **overrides)


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["python", "-I", "train.py"], "-I"),
        (["python3.11", "-W", "ignore", "-uS", "train.py"], "-S"),
        (["/venv/bin/python", "-Xdev", "-E", "-m", "pkg"], "-E"),
        (["python", "train.py", "-I"], None),  # the script's own argument
        (["python", "-c", "import x", "-I"], None),
        (["python", "-m", "pkg.train", "-S"], None),
        (["sh", "-c", "python -I train.py"], None),  # not seen through a shell
        (["env", "A=1", "python3", "-I", "t.py"], "-I"),
        (["python-wrapper.sh", "-E"], None),
    ],
)
def test_a_python_option_that_skips_the_runtime_is_found(
    command: list[str], flag: str | None
) -> None:
    assert caveats._runtime_skipped(command) == flag


def test_a_fact_that_cannot_be_read_costs_the_record_that_one_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code could not be read (git failed): the host, packages and data are still kept,
    and the run says what it lacks and why."""
    from toolkit import source

    (tmp_path / "toolkit.yaml").write_text(
        f"name: t\ntargets: {{cpu: {{}}}}\nexperiment: {{command: {sys.executable} -V}}\n"
    )
    cfg = load_config(tmp_path / "toolkit.yaml")
    req = run.request(cfg, "cpu", None, native=True)

    def broken(*args: object, **kwargs: object) -> object:
        raise source.GitFailed("`git diff` failed in /x")

    monkeypatch.setattr(source, "source_state", broken)
    notes: list[str] = []
    result = run.execute(
        cfg, req, on_stdout=lambda chunk: None, on_stderr=lambda chunk: None, on_note=notes.append
    )
    assert result.incomplete == ("code",)
    assert "the record is incomplete: code: GitFailed: `git diff` failed in /x" in notes
    doc = json.loads((result.path / "record.json").read_text())
    assert doc["code"] is None and doc["host"] and doc["data"] is not None and doc["packages"]


@pytest.mark.parametrize(("signum", "code"), [(None, 130), (15, 143), (1, 129)])
def test_a_shell_stopped_by_a_signal_exits_as_a_shell_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int | None, code: int
) -> None:
    from toolkit import engine, image, interrupt

    (tmp_path / "toolkit.yaml").write_text("name: t\ntargets: {cpu: {}}\n")
    cfg = load_config(tmp_path / "toolkit.yaml")
    monkeypatch.setattr(image, "current_image", lambda cfg, target: ("img:1", None))
    monkeypatch.setattr(
        engine, "run_container", lambda *a, **k: engine.ContainerExit(None, interrupted=True)
    )
    monkeypatch.setattr(interrupt, "_first", signum)
    req = run.request(cfg, "cpu", ["bash"])
    ended = run.shell(
        cfg, req, interactive=False, on_stdout=lambda chunk: None, on_stderr=lambda chunk: None
    )
    assert ended == code


def native_project(tmp_path: Path) -> tuple[Config, run.RunRequest]:
    (tmp_path / "toolkit.yaml").write_text(
        f"name: t\ntargets: {{cpu: {{}}}}\nexperiment: {{command: {sys.executable} -V, "
        "outputs: [out.txt]}\n"
    )
    cfg = load_config(tmp_path / "toolkit.yaml")
    return cfg, run.request(cfg, "cpu", None, native=True)


def test_a_native_run_is_refused_while_another_holds_the_workdirs_outputs(tmp_path: Path) -> None:
    import fcntl

    from toolkit.errors import UserError

    cfg, req = native_project(tmp_path)
    lock_path = tmp_path / ".toolkit" / "native-run.lock"
    lock_path.parent.mkdir()
    lock_path.write_text("pid 4242, started 14:03:11")
    with lock_path.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: another run
        with pytest.raises(UserError, match=r"under way \(pid 4242, started 14:03:11\)"):
            run.execute(cfg, req, on_stdout=lambda c: None, on_stderr=lambda c: None)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_a_file_system_without_locks_does_not_stop_a_native_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lustre without -o flock says ENOSYS, NFS without lockd ENOLCK: the run goes on."""
    import errno
    import fcntl

    def unsupported(*args: object) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    cfg, req = native_project(tmp_path)
    result = run.execute(cfg, req, on_stdout=lambda c: None, on_stderr=lambda c: None)
    assert result.status == "succeeded"


def test_an_error_after_the_start_is_not_said_to_be_a_command_that_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from toolkit import proc
    from toolkit.errors import UserError

    cfg, req = native_project(tmp_path)
    raised: list[OSError] = []

    def stream(*args: object, **kwargs: object) -> object:
        raise raised[-1]

    monkeypatch.setattr(proc, "stream", stream)
    workdir = str(cfg.root)
    raised.append(OSError(errno.EACCES, "Permission denied", workdir))  # the folder it starts in
    with pytest.raises(UserError, match=r"cannot start the run in .*: Permission denied"):
        run.execute(cfg, req, on_stdout=lambda c: None, on_stderr=lambda c: None)
    raised.append(OSError(errno.EMFILE, "Too many open files"))  # while it ran: not the command
    with pytest.raises(OSError, match="Too many open files") as caught:
        run.execute(cfg, req, on_stdout=lambda c: None, on_stderr=lambda c: None)
    assert not isinstance(caught.value, UserError)
