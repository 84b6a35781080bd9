"""`toolkit init`: the files it writes load, and it never overwrites without --force."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import toolkit
from toolkit.config import load_config, parse_config
from toolkit.lock import read_requirements
from toolkit.scaffold import (
    MAKE_BEGIN,
    MAKE_END,
    InitOptions,
    make_targets,
    missing_gitignore_entries,
    project_name,
    render_config,
    render_make_block,
)

MAKE_TARGETS = {"lock", "toolkit-base", "build-cpu", "cpu-run", "repro-check"}


def init(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return toolkit("init", *args, cwd=project, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "My Experiment_v2"
    folder.mkdir()
    return folder


def test_init_on_an_empty_project_writes_a_loadable_config(project: Path) -> None:
    done = init(project, "--command", "python train.py --epochs 2")
    assert done.returncode == 0, done.stderr
    cfg = load_config(project / "toolkit.yaml")
    assert cfg.name == "my-experiment_v2"
    assert cfg.python == "3.11"
    assert list(cfg.targets) == ["cpu"]
    assert cfg.targets["cpu"].gpus is None
    assert cfg.experiment is not None
    assert cfg.experiment.command == "python train.py --epochs 2"
    assert cfg.experiment.data == ()  # no data/ folder here
    assert cfg.experiment.outputs == ("outputs/",)
    assert (cfg.experiment.metrics.file, cfg.experiment.metrics.primary) == (
        "metrics.jsonl",
        "loss",
    )
    # an existing script that downloads keeps working; the line shows how to turn it off
    assert cfg.experiment.network is True
    assert (
        "  network: true  # false: no network in the run" in (project / "toolkit.yaml").read_text()
    )
    assert "# torch==2.13.0" in (project / "requirements.in").read_text()
    makefile = (project / "Makefile").read_text()
    assert makefile.startswith(MAKE_BEGIN)
    assert make_targets(makefile) == MAKE_TARGETS
    assert "\t$(TOOLKIT) run --target cpu\n" in makefile
    # What a run writes into the project is ignored too: untracked, it would make the code dirty.
    assert (project / ".gitignore").read_text().splitlines()[1:] == [
        "runs/",
        ".toolkit/",
        "/outputs/",
        "/metrics.jsonl",
    ]
    for name in ("toolkit.yaml", "requirements.in", "Makefile", ".gitignore"):
        assert f"created {name}" in done.stdout


def test_flags_fill_every_field(project: Path) -> None:
    (project / "data").mkdir()
    done = init(
        project,
        "--command",
        'python train.py --tag "a: b" # not a comment',
        "--name",
        "cifar",
        "--gpu",
        "--output",
        "checkpoints/",
        "--output",
        "weights.npz",
        "--metrics-file",
        "log.jsonl",
        "--primary",
        "val_loss",
        "-r",
        "torch==2.13.0",
        "-r",
        "numpy>=2,<3",
    )
    assert done.returncode == 0, done.stderr
    cfg = load_config(project / "toolkit.yaml")
    assert cfg.name == "cifar"
    assert cfg.targets["gpu"].gpus == "all"
    assert cfg.experiment is not None
    assert cfg.experiment.command == 'python train.py --tag "a: b" # not a comment'
    assert cfg.experiment.data == ("data/",)  # found on disk
    assert cfg.experiment.outputs == ("checkpoints/", "weights.npz")
    assert cfg.experiment.metrics.file == "log.jsonl"
    assert cfg.experiment.metrics.primary == "val_loss"
    lines = (project / "requirements.in").read_text().splitlines()
    assert lines[-2:] == ["torch==2.13.0", "numpy>=2,<3"]
    assert make_targets((project / "Makefile").read_text()) == MAKE_TARGETS | {
        "build-gpu",
        "gpu-run",
    }


def test_second_run_keeps_every_file(project: Path) -> None:
    assert init(project, "--command", "python a.py").returncode == 0
    before = {p.name: p.read_text() for p in project.iterdir()}
    again = init(project, "--command", "python b.py")  # (--gpu adds its target: below)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_text() for p in project.iterdir()} == before
    assert "kept toolkit.yaml: exists (--force overwrites it)" in again.stdout
    assert "kept Makefile: already has the toolkit block" in again.stdout
    assert "kept .gitignore: already ignores runs/, .toolkit/" in again.stdout  # yaml kept


def test_force_overwrites_config_requirements_and_the_make_block(project: Path) -> None:
    (project / "Makefile").write_text("all:\n\techo mine\n")
    assert init(project, "--command", "python a.py").returncode == 0
    (project / "requirements.in").write_text("edited\n")
    done = init(project, "--command", "python b.py", "--gpu", "-r", "numpy", "--force")
    assert done.returncode == 0, done.stderr
    cfg = load_config(project / "toolkit.yaml")
    assert cfg.experiment is not None and cfg.experiment.command == "python b.py"
    assert "gpu" in cfg.targets
    assert (project / "requirements.in").read_text().splitlines()[-1] == "numpy"
    makefile = (project / "Makefile").read_text()
    assert makefile.startswith("all:\n\techo mine\n")
    assert makefile.count(MAKE_BEGIN) == 1 and makefile.count(MAKE_END) == 1
    assert "gpu-run" in make_targets(makefile)
    assert "overwrote toolkit.yaml" in done.stdout


def test_force_without_requirements_keeps_the_users_requirements_in(project: Path) -> None:
    assert init(project, "--command", "python a.py").returncode == 0
    mine = "torch==2.13.0\nlightning>=2.5\n"
    (project / "requirements.in").write_text(mine)
    done = init(project, "--command", "python a.py", "--gpu", "--force")
    assert done.returncode == 0, done.stderr
    assert "gpu" in load_config(project / "toolkit.yaml").targets
    assert (project / "requirements.in").read_text() == mine
    assert "kept requirements.in: exists (--force with -r replaces it)" in done.stdout
    assert "overwrote requirements.in" not in done.stdout


def test_an_existing_requirements_txt_is_included(project: Path) -> None:
    (project / "requirements.txt").write_text("numpy==2.1.0\n")
    done = init(project, "--command", "python a.py")
    assert done.returncode == 0, done.stderr
    assert "created requirements.in (includes your requirements.txt: -r requirements.txt)" in (
        done.stdout
    )
    # what toolkit lock reads: requirements.txt's pins, through the include
    assert read_requirements(project / "requirements.in", project) == [
        ("requirements.in", ["-r requirements.txt"]),
        ("requirements.txt", ["numpy==2.1.0"]),
    ]


def test_requirements_given_replace_the_requirements_txt_include(project: Path) -> None:
    (project / "requirements.txt").write_text("numpy==2.1.0\n")
    done = init(project, "--command", "python a.py", "-r", "scipy")
    assert done.returncode == 0, done.stderr
    assert read_requirements(project / "requirements.in", project) == [
        ("requirements.in", ["scipy"])
    ]
    assert "requirements.txt" not in done.stdout


def test_existing_makefile_gets_the_block_appended_once(project: Path) -> None:
    mine = "# my build\nPY := python3\ntest:\n\t$(PY) -m pytest\n"
    (project / "Makefile").write_text(mine)
    for _ in range(2):
        assert init(project, "--command", "python a.py").returncode == 0
    makefile = (project / "Makefile").read_text()
    assert makefile.startswith(mine + "\n" + MAKE_BEGIN)
    assert makefile.count(MAKE_BEGIN) == 1
    assert make_targets(makefile) == MAKE_TARGETS | {"test"}
    listed = subprocess.run(
        ["make", "--no-print-directory", "-n", "cpu-run", "test"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 127:  # make is installed
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines() == [
            "toolkit base",
            "toolkit build --target cpu",
            "toolkit run --target cpu",
            "python3 -m pytest",
        ]
        assert "warning" not in listed.stderr


def test_makefile_with_a_clashing_target_is_left_alone(project: Path) -> None:
    mine = "lock:\n\tpip-compile\n.PHONY: lock\n"
    (project / "Makefile").write_text(mine)
    done = init(project, "--command", "python a.py")
    assert done.returncode == 0, done.stderr
    assert (project / "Makefile").read_text() == mine
    assert "kept Makefile: already defines lock" in done.stdout
    assert "`toolkit base`, `toolkit build`, `toolkit run`" in done.stdout


def test_gitignore_gains_only_missing_lines(project: Path) -> None:
    (project / ".gitignore").write_text("__pycache__/\n/runs/\nckpt")  # no final newline
    done = init(project, "--command", "python a.py", "--output", "./ckpt", "--metrics-file", "")
    assert done.returncode == 0, done.stderr
    assert (project / ".gitignore").read_text().splitlines() == [
        "__pycache__/",
        "/runs/",
        "ckpt",
        "# toolkit: run records, local state, and what the experiment writes",
        ".toolkit/",
    ]


def test_without_command_and_no_terminal_it_asks_for_the_flag(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "init"],
        cwd=project,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--command" in done.stderr
    assert list(project.iterdir()) == []


def test_interactive_init_prompts_for_the_command_only(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from toolkit.cli import init as init_cli
    from toolkit.cli.app import app

    monkeypatch.setattr(init_cli, "_interactive", lambda: True)
    result = CliRunner().invoke(app, ["init", str(project)], input="python main.py --fast\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("Command that runs the experiment") == 1
    cfg = load_config(project / "toolkit.yaml")
    assert cfg.experiment is not None
    assert cfg.experiment.command == "python main.py --fast"


def test_bad_flag_values_fail_before_anything_is_written(project: Path) -> None:
    done = init(project, "--command", "python a.py", "--data", "../elsewhere")
    assert done.returncode == 2
    assert "experiment.data" in done.stderr
    assert list(project.iterdir()) == []


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("my-project", "my-project"),
        ("My Project (copy)", "my-project-copy"),
        ("__init__", "init"),
        ("Ünïcode Ñet", "unicode-net"),
        ("...", "experiment"),
        ("x" * 80, "x" * 63),
    ],
)
def test_project_name_is_a_valid_image_name(folder: str, name: str) -> None:
    assert project_name(folder) == name


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=300))
def test_any_folder_name_gives_a_loadable_config(folder: str) -> None:
    text = render_config(InitOptions(command="python train.py"), project_name(folder), (), ())
    assert parse_config(text, Path("/p/toolkit.yaml")).name == project_name(folder)


@given(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1).filter(
        lambda s: s.strip()
    )
)
def test_any_command_reads_back_unchanged(command: str) -> None:
    text = render_config(InitOptions(command=command), "p", (), ("out/",))
    cfg = parse_config(text, Path("/p/toolkit.yaml"))
    assert cfg.experiment is not None
    assert cfg.experiment.command == command.strip()


def test_make_targets_ignores_variables_recipes_and_special_targets() -> None:
    text = "A := b\nB ?= c\nx y: z\n\techo a: b\n.PHONY: x\n$(STAMP): f\n# c: d\n"
    assert make_targets(text) == {"x", "y", "$(STAMP)"}
    assert make_targets(text + render_make_block(gpu=False)) == {"x", "y", "$(STAMP)"} | {
        "lock",
        "toolkit-base",
        "build-cpu",
        "cpu-run",
        "repro-check",
    }


def test_gitignore_equivalents_count_as_present() -> None:
    assert missing_gitignore_entries("runs\n/.toolkit/\n") == ()
    assert missing_gitignore_entries("runs.txt\n") == ("runs/", ".toolkit/")
    assert missing_gitignore_entries("out/\n", ("/out/", "/m.jsonl")) == ("/m.jsonl",)


def test_the_next_step_asks_for_a_dependency_list_only_when_there_is_none(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "next: list your dependencies in requirements.in" in init(empty, "--command", "x").stdout
    adopted = tmp_path / "adopted"
    adopted.mkdir()
    (adopted / "requirements.txt").write_text("numpy\n")
    done = init(adopted, "--command", "x")
    assert "next: `toolkit lock` and" in done.stdout and "list your" not in done.stdout


def test_init_gpu_on_a_configured_project_adds_the_target_and_keeps_every_setting(
    project: Path,
) -> None:
    """`toolkit init --gpu --force` put seed, data, primary and network back to init's
    defaults; `toolkit init --gpu` adds the target in place."""
    assert init(project, "--command", "python train.py").returncode == 0
    config = project / "toolkit.yaml"
    custom = (
        config.read_text()
        .replace("data: []", "data: [extra/]")
        .replace("seed: 0", "seed: 42")
        .replace("network: true", "network: false")
    )
    config.write_text(custom + "# my own note\n")
    done = init(project, "--gpu")
    assert done.returncode == 0, done.stderr
    assert "gpu target; your other settings kept" in done.stdout
    cfg = load_config(config)
    assert list(cfg.targets) == ["cpu", "gpu"] and cfg.targets["gpu"].gpus == "all"
    assert cfg.determinism.seed == 42 and cfg.experiment is not None
    assert cfg.experiment.data == ("extra/",) and cfg.experiment.network is False
    assert config.read_text().endswith("# my own note\n")
    assert {"build-gpu", "gpu-run"} <= make_targets((project / "Makefile").read_text())
    again = init(project, "--gpu")
    assert "already has a gpu target" in again.stdout


def test_init_force_off_a_terminal_keeps_the_command_it_had(project: Path) -> None:
    assert init(project, "--command", "python train.py --epochs 3").returncode == 0
    done = init(project, "--gpu", "--force")  # no terminal, no --command
    assert done.returncode == 0, done.stderr
    cfg = load_config(project / "toolkit.yaml")
    assert cfg.experiment is not None and cfg.experiment.command == "python train.py --epochs 3"
