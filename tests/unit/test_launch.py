"""`toolkit run`'s own command-line reader agrees with the Typer app, and leaves it the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from toolkit import interrupt
from toolkit.cli import launch
from toolkit.cli.app import app


@pytest.fixture(autouse=True)
def _unsettled(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A finished run settles the process (stop signals ignored until it exits): not this one."""
    import signal

    monkeypatch.setattr(interrupt, "_settled", False)
    handlers = {sig: signal.getsignal(sig) for sig in interrupt.STOPS}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


SAME_AS_TYPER = [
    ["run"],
    ["run", "--"],
    ["run", "--target", "gpu"],
    ["run", "-t", "cpu", "--", "python", "-c", "pass"],
    ["run", "--target=cpu", "--seed", "7", "--threads=3", "--workers", "0"],
    ["run", "--no-strict", "--cpu", "portable", "--native", "--no-policy"],
    ["run", "--build", "--seed", "1", "--seed", "2"],  # the last one wins
    ["run", "--", "python", "train.py", "--seed", "9", "--target", "x"],  # the command's own
    ["-c", "other.yaml", "--debug", "run", "--threads", "1", "--", "echo", "run"],
    ["--config=cfg/toolkit.yaml", "run"],
]

LEFT_TO_TYPER = [
    [],
    ["runs"],
    ["show", "run"],
    ["run", "--help"],
    ["run", "-h"],
    ["run", "python", "train.py"],  # a command without `--`
    ["run", "--seed"],  # no value
    ["run", "--seed", "x"],  # not a number
    ["run", "--threads", "0"],  # below the minimum
    ["run", "--workers", "-1"],
    ["run", "--frobnicate"],
    ["run", "-tcpu"],
    ["run", "-t=cpu"],  # click reads the value as "=cpu"
    ["-c=toolkit.yaml", "run"],
    ["--version", "run"],
    ["-c", "run"],  # "run" is the config's value; no command
]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[launch.RunArgs]:
    calls: list[launch.RunArgs] = []

    def fake_run(args: launch.RunArgs) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(launch, "run", fake_run)
    return calls


@pytest.mark.parametrize("argv", SAME_AS_TYPER, ids=" ".join)
def test_fast_path_reads_what_typer_reads(argv: list[str], captured: list[launch.RunArgs]) -> None:
    fast = launch.parse(argv)
    assert fast is not None
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert captured == [fast]


@pytest.mark.parametrize("argv", LEFT_TO_TYPER, ids=lambda a: " ".join(a) or "(none)")
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert launch.parse(argv) is None


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["run", "--no-stirct"], "no such option: --no-stirct (did you mean --no-strict?)"),
        (["run", "--nativ", "--", "python", "x.py"], "no such option: --nativ"),
        (["shell", "--targt", "cpu"], "no such option: --targt (did you mean --target?)"),
    ],
)
def test_an_option_toolkit_does_not_know_is_refused_not_run_as_the_command(
    argv: list[str], said: str, tmp_path: Path
) -> None:
    """`toolkit run --no-stirct` ran `--no-stirct` as the experiment: a failed run, exit 127."""
    from tests.support import toolkit

    result = toolkit(*argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"error: {said}" in result.stderr
    assert "a command of your own goes after --" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing run


def test_parsed_values_have_their_types() -> None:
    args = launch.parse(["-c", "a/toolkit.yaml", "run", "--seed", "4", "--", "python", "x.py"])
    assert args == launch.RunArgs(config=Path("a/toolkit.yaml"), seed=4, command=("python", "x.py"))


def test_the_app_knows_every_option_the_fast_path_reads() -> None:
    """A `run` option added to the Typer command but not to `launch` would silently go to Typer
    (correct, only slower); one removed from Typer but still read by `launch` would be wrong."""
    result = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    for option in [*launch._VALUES, *launch._FLAGS]:
        if option.startswith("--"):
            assert option in result.output, option


def test_a_run_starts_its_container_without_the_heavy_imports() -> None:
    # What `toolkit run` imports before it asks the engine for a container; each of these
    # would add milliseconds to every short run (benchmarks/run.py).
    import subprocess
    import sys

    code = (
        "import sys; import toolkit.cli, toolkit.cli.launch, toolkit.run, toolkit.image, "
        "toolkit.engine, toolkit.runtime.bundle; "
        "print(' '.join(sorted({'typer', 'click', 'rich', 'docker', 'yaml'} "
        "& set(sys.modules))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_the_typer_app_starts_without_pydantic() -> None:
    # typer 0.29 imports pydantic to build each parameter (~75 ms on every command but the
    # fast `toolkit run`); pyproject.toml keeps typer below it.
    import subprocess
    import sys

    code = (
        "import sys; from toolkit.cli import main; sys.argv = ['toolkit', 'show', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('typer' in sys.modules, 'pydantic' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.split() == ["True", "False"]


def test_ctrl_c_while_toolkit_loads_its_modules_is_a_message_not_a_traceback() -> None:
    # Ctrl-C lands wherever the process is: here, in the import of the fast path's modules.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Press:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'toolkit.cli.launch':\n"
        "            raise KeyboardInterrupt\n"
        "from toolkit.cli import main\n"
        "sys.meta_path.insert(0, Press())\n"
        "sys.argv = ['toolkit', 'run']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "error: interrupted\n"


def test_a_lost_engine_is_said_with_its_cause_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolkit import engine, image, run

    (tmp_path / "toolkit.yaml").write_text(
        "name: t\ntargets: {cpu: {}}\nexperiment: {command: x}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(image, "current_image", lambda cfg, target: ("t-cpu:0", None))

    def engine_dies(*args: Any) -> engine.ContainerExit:
        args[-2]()  # `started`: the container starts (the facts are gathered beside it), then:
        return engine.ContainerExit(None, engine_error="the engine closed the connection")

    monkeypatch.setattr(run, "_run_in_container", engine_dies)
    assert launch.run(launch.RunArgs()) == 1
    err = capsys.readouterr().err
    assert (
        "the Docker Engine stopped answering during the run: the engine closed the connection"
        in err
    )
    assert "the experiment may still be running (`docker ps`)" in err


@pytest.mark.parametrize("module", ["toolkit.errors", "toolkit.cli.output", "dataclasses"])
def test_ctrl_c_while_the_entry_point_itself_loads_is_a_message_not_a_traceback(
    module: str,
) -> None:
    """`toolkit.cli` imports nothing at its top: what it needs loads inside `main`, so Ctrl-C
    in a command's first milliseconds is `error: interrupted` too (it was a traceback)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from toolkit.cli import main\n"
        "assert not {'toolkit.errors', 'toolkit.cli.output', 'dataclasses'} & set(sys.modules)\n"
        "class Press:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r}:\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Press())\n"
        "sys.argv = ['toolkit', 'run']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (130, "error: interrupted\n")


def ran(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ended: Any,
    args: launch.RunArgs | None = None,
) -> int:
    """`toolkit run` (`args`) of a project whose container ends as `ended` says."""
    from toolkit import image, run

    (tmp_path / "toolkit.yaml").write_text(
        "name: t\ntargets: {cpu: {}}\nexperiment: {command: x}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(image, "current_image", lambda cfg, target: ("t-cpu:0", None))

    def container(*args: Any) -> Any:
        args[-2]()  # `started`: the container starts (the facts are gathered beside it)
        return ended

    monkeypatch.setattr(run, "_run_in_container", container)
    return launch.run(args or launch.RunArgs())


@pytest.mark.parametrize(
    ("received", "code", "said"),
    [
        (None, 130, "interrupted"),
        (2, 130, "interrupted"),
        (15, 143, "interrupted by SIGTERM"),
        (1, 129, "interrupted by SIGHUP"),
    ],
)
def test_an_interrupted_run_exits_by_the_signal_that_stopped_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    received: int | None,
    code: int,
    said: str,
) -> None:
    """130 for Ctrl-C, as before; 143 for SIGTERM, 129 for SIGHUP, as a shell says them."""
    from toolkit import engine, interrupt

    monkeypatch.setattr(interrupt, "_first", received, raising=False)
    assert ran(tmp_path, monkeypatch, engine.ContainerExit(None, interrupted=True)) == code
    err = capsys.readouterr().err
    assert f": {said} (record: runs/" in err
    assert "→" not in err  # no hint: toolkit stopped it


@pytest.mark.parametrize(
    ("exit_code", "hint"),
    [
        (126, "the command is a folder, or a file that is not executable"),
        (127, "the command was not found"),
        (137, "killed (SIGKILL): out of memory, or stopped from outside, e.g. docker kill"),
    ],
)
def test_a_failed_run_says_what_its_exit_code_means(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exit_code: int,
    hint: str,
) -> None:
    from toolkit import engine

    assert ran(tmp_path, monkeypatch, engine.ContainerExit(exit_code)) == exit_code
    assert f"  → exit {exit_code}: {hint}" in capsys.readouterr().err


def test_a_run_toolkit_killed_is_not_said_to_be_out_of_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolkit import engine, interrupt

    monkeypatch.setattr(interrupt, "_first", None, raising=False)
    stopped = engine.ContainerExit(137, interrupted=True)  # Ctrl-C three times: SIGKILL
    assert ran(tmp_path, monkeypatch, stopped) == 130
    assert "out of memory" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("threads", "workers", "said"),
    [(1, 1, "1 thread, 1 loader worker"), (2, 0, "2 threads, 0 loader workers")],
)
def test_the_run_line_counts_in_words(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    threads: int,
    workers: int,
    said: str,
) -> None:
    from toolkit import engine

    args = launch.RunArgs(threads=threads, workers=workers)
    assert ran(tmp_path, monkeypatch, engine.ContainerExit(0), args) == 0
    assert f"(seed 0, {said}, strict, cpu " in capsys.readouterr().err


def test_run_build_keeps_stdout_for_the_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`toolkit run --build -- python make_table.py > table.csv`: the build's result line went
    into table.csv, before the table."""
    from toolkit import engine, image

    built = image.BuiltImage("t-cpu:0", "sha256:0", True, 10.0, tmp_path / "build.log")
    monkeypatch.setattr(image, "build", lambda *args, **kwargs: built)
    assert ran(tmp_path, monkeypatch, engine.ContainerExit(0), launch.RunArgs(build=True)) == 0
    shown = capsys.readouterr()
    assert shown.out == ""
    assert f"✓ cpu: built t-cpu:0 in 10s (log: {tmp_path / 'build.log'})" in shown.err


def test_toolkit_build_still_prints_its_result_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit import image

    (tmp_path / "toolkit.yaml").write_text("name: t\ntargets: {cpu: {}}\n")
    monkeypatch.chdir(tmp_path)
    built = image.BuiltImage("t-cpu:0", "sha256:0", False, 0.0, None)
    monkeypatch.setattr(image, "build", lambda *args, **kwargs: built)
    result = CliRunner().invoke(app, ["build"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "✓ cpu: t-cpu:0 is up to date, nothing to build\n"


@pytest.mark.parametrize(
    ("ended", "received", "code"),
    [
        ((0, False), None, 1),  # succeeded, but without its record: not a success
        ((3, False), None, 3),
        ((-9, False), None, 137),  # a native program SIGKILL ended: as a shell says it
        ((-2, True), 15, 143),  # stopped by SIGTERM: its Python died of the SIGINT sent
        ((130, True), 15, 143),  # a container's own 130 is not what stopped toolkit
    ],
)
def test_a_run_whose_record_is_lost_exits_as_a_run_that_did_not_succeed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ended: tuple[int, bool],
    received: int | None,
    code: int,
) -> None:
    """Not with a negative code (sys.exit(-2) is 254) or the container's 130 after SIGTERM."""
    from toolkit import engine, interrupt, record
    from toolkit.errors import RecordNotWritten

    def full(run_dir: Path, doc: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(record, "write_record", full)
    monkeypatch.setattr(interrupt, "_first", received, raising=False)
    exit_code, interrupted = ended
    with pytest.raises(RecordNotWritten, match="its record could not be written") as raised:
        ran(tmp_path, monkeypatch, engine.ContainerExit(exit_code, interrupted=interrupted))
    assert raised.value.exit_code == code


def test_a_run_whose_folder_was_removed_while_it_ran_is_not_told_to_free_disk_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from toolkit import engine, record
    from toolkit.errors import RecordNotWritten

    def gone(run_dir: Path, doc: object) -> Path:
        shutil.rmtree(run_dir)
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(record, "write_record", gone)
    with pytest.raises(RecordNotWritten) as raised:
        ran(tmp_path, monkeypatch, engine.ContainerExit(0))
    assert raised.value.hint is not None
    assert raised.value.hint.startswith("its folder ") and "was removed while it ran" in (
        raised.value.hint
    )
    assert "free disk space" not in raised.value.hint


def test_a_signal_while_a_finished_run_is_summed_up_does_not_cut_it_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run succeeded and its record is written: Ctrl-C (or SIGTERM) during the last lines
    no longer printed "interrupted" and exited 130 for a run whose record says succeeded."""
    import os
    import signal

    from toolkit import engine
    from toolkit.cli import output

    said = output.success

    def pressed_meanwhile(message: str, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        said(message, **kwargs)

    monkeypatch.setattr(output, "success", pressed_meanwhile)
    try:
        code = ran(tmp_path, monkeypatch, engine.ContainerExit(0))
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C during the summary of a finished run raised")
    assert code == 0
    assert ": succeeded (record: runs/" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        (None, ""),
        (3, " (exit 3)"),
        (255, " (exit 255)"),
        (137, " (exit 137: SIGKILL)"),  # a container's, as its shell says it
        (-2, " (exit 130: SIGINT)"),  # a native program's: the same stop reads the same
        (-15, " (exit 143: SIGTERM)"),
    ],
)
def test_how_a_program_ended_reads_the_same_natively_and_in_a_container(
    code: int | None, shown: str
) -> None:
    assert launch._exited(code) == shown
